// autocannon `setupRequest` for its worker threads (bench/serve.mjs with
// --load-workers > 1): a worker thread cannot take a function, only a file to
// require. Bodies: the JSON array in the file XMC_BENCH_BODIES names.
'use strict';
const { readFileSync } = require('node:fs');

const bodies = JSON.parse(readFileSync(process.env.XMC_BENCH_BODIES, 'utf8'));
let i = 0;
module.exports = (req) => ({ ...req, body: bodies[i++ % bodies.length] });
