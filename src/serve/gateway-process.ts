/**
 * Entry of one gateway process of `--gateways N` (a node:cluster worker that
 * startGatewayCluster forks; cluster.ts describes the protocol).
 */
import { runGatewayProcess } from './cluster.js';

await runGatewayProcess();
