// pm2 ecosystem of a distributed run (nats-server, encoder, coordinator, one
// worker per GPU). The distributed trainer is not built yet (see
// docs/ARCHITECTURE.md), so there is nothing for pm2 to start: train with the
// single-process `xmc train` meanwhile.
//
// Written as an ES module with a named `apps` export: this package is
// "type": "module", and pm2 loads the file with require(), which Node >= 20.19
// allows for ES modules without top-level await (it sees the named exports).
export const apps = [];
