// A Koa app, unmodified: gatewire serve examples/koa.mjs --http 8080
import Koa from 'koa';
import { Readable } from 'node:stream';

const app = new Koa();
app.use(async (ctx) => {
  if (ctx.path === '/') {
    ctx.type = 'text/plain';
    ctx.body = 'Hello from Koa\n';
  } else if (ctx.path === '/echo' && ctx.method === 'POST') {
    const chunks = [];
    for await (const c of ctx.req) chunks.push(c);
    ctx.body = { body: Buffer.concat(chunks).toString('utf8'), path: ctx.path, query: ctx.query };
  } else if (ctx.path === '/stream') {
    ctx.type = 'text/plain';
    ctx.body = Readable.from(['a', 'b', 'c'].map((s) => s.repeat(10000)));
  } else if (ctx.path === '/fail') {
    throw new Error('koa route failed');
  } else {
    ctx.status = 404;
    ctx.body = 'nope\n';
  }
});
app.silent = true;
export default app;
