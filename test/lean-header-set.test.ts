// The gateway's lean response.set must set headers exactly as koa's own would, in every form koa
// takes, and leave a response whose headers are out alone.
import t from 'tap';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import Koa from 'koa';
import { leanHeaderSet } from '../gateway/lean-header-set.js';

t.test('headers set through the lean set reach the client as koa would send them', async (t) => {
  const app = new Koa();
  // What still reaches koa's own set: only the forms it has to normalize.
  const toKoa: unknown[] = [];
  const koaSet = app.response.set;
  app.response.set = function (this: Koa.Response, ...args: unknown[]): void {
    toKoa.push(args[0]);
    (koaSet as (...a: unknown[]) => void).apply(this, args);
  } as Koa.BaseResponse['set'];
  leanHeaderSet(app.response);
  let lateSetThrew: unknown = 'not reached';
  app.use(async (ctx) => {
    ctx.set('x-plain', 'one');
    ctx.set('x-number', 42 as unknown as string);
    ctx.set('x-list', ['a', 'b']);
    ctx.set({ 'x-from-object': 'obj', 'x-other': 'two' });
    ctx.set('x-plain', 'replaced');
    ctx.set('', 'ignored');
    ctx.length = 5;
    ctx.body = Buffer.from('hello');
    ctx.res.once('finish', () => {
      try {
        ctx.set('x-too-late', 'no');
        lateSetThrew = false;
      } catch (err) {
        lateSetThrew = err;
      }
    });
  });
  const server = http.createServer(app.callback()).listen(0, '127.0.0.1');
  t.teardown(() => new Promise<void>((resolve) => server.close(() => resolve())));
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  const res = await fetch(`http://127.0.0.1:${port}/`);
  t.equal(await res.text(), 'hello');
  t.equal(res.headers.get('x-plain'), 'replaced', 'a later set replaces the value');
  t.equal(res.headers.get('x-number'), '42', 'a number is sent as its digits');
  t.equal(res.headers.get('x-list'), 'a, b', 'a list goes through koa: one header per value');
  t.equal(res.headers.get('x-from-object'), 'obj', 'an object of headers goes through koa');
  t.equal(res.headers.get('x-other'), 'two');
  t.equal(res.headers.get('content-length'), '5', "koa's own length setter uses it too");
  t.equal(res.headers.get('x-too-late'), null);
  t.equal(lateSetThrew, false, 'a set after the headers went out is ignored, not thrown');
  t.same(toKoa, ['x-list', { 'x-from-object': 'obj', 'x-other': 'two' }, ''], 'plain names and values never reach koa');
});
