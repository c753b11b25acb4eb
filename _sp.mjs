// node smallput.mjs SIZE CONC SECS  (PIDS env: {"gw":[..],"ns":[..],"sn":[..]})
import { RawS3 } from '/work/main/dist/bench/s3/raw.js';
import { readFileSync, readdirSync } from 'node:fs';
const [size, conc, secs] = process.argv.slice(2).map(Number);
const pids = JSON.parse(process.env.PIDS || '{}');
const cpu = () => { const o = {}; for (const [k, ps] of Object.entries(pids)) { o[k] = [0, 0]; for (const p of ps) { const f = readFileSync(`/proc/${p}/stat`, 'utf8').split(') ')[1].split(' '); o[k][0] += Number(f[11]) * 10; o[k][1] += Number(f[12]) * 10; } } return o; };
const c = new RawS3('http://127.0.0.1:9000', { accessKeyId: 'cairnadmin', secretAccessKey: 'cairnadmin', region: 'us-east-1' }, { connections: conc });
await c.createBucket('smallput');
const body = Buffer.alloc(size, 7);
let ops = 0; const lat = []; let stop = false;
const c0 = cpu(); const u0 = process.cpuUsage(); const t0 = performance.now();
setTimeout(() => (stop = true), secs * 1000);
await Promise.all(Array.from({ length: conc }, async (_, w) => { let i = 0; while (!stop) { const a = performance.now(); await c.put('smallput', `k-${w}-${i++}`, body); lat.push(performance.now() - a); ops++; } }));
const s = (performance.now() - t0) / 1000; const c1 = cpu(); const u = process.cpuUsage(u0);
lat.sort((a, b) => a - b);
console.log(`${size}B x${conc}: ${(ops / s).toFixed(0)} ops/s p50 ${lat[lat.length >> 1].toFixed(1)} p99 ${lat[Math.floor(lat.length * 0.99)].toFixed(1)} ms; CPU ms/op user+sys:`, Object.entries(c1).map(([k, v]) => `${k} ${((v[0] - c0[k][0]) / ops).toFixed(2)}+${((v[1] - c0[k][1]) / ops).toFixed(2)}`).join(', '), `client ${((u.user + u.system) / 1000 / ops).toFixed(2)}`);
await c.close();
