// The worker thread a session runs in (see main.js): the main thread can terminate it at
// any moment, even while the engine is blocked in an HTTP request, so a run's wall-clock
// budget holds whatever the component does.

import { parentPort, workerData } from 'node:worker_threads';

import { runSession } from './session.js';

await runSession(workerData, (message) => parentPort.postMessage(message));
