// A Hono app, unmodified: gatewire serve examples/hono.mjs --http 8080
import { Hono } from 'hono';

const app = new Hono();
app.get('/', (c) => c.text('Hello from Hono\n'));
app.get('/hello/:name', (c) => c.json({ hello: c.req.param('name'), q: c.req.query('q') ?? null }));
app.post('/echo', async (c) => c.json({ body: await c.req.text() }));
app.get('/cookie', (c) => {
  c.header('Set-Cookie', 'a=1', { append: true });
  c.header('Set-Cookie', 'b=2', { append: true });
  return c.text('two cookies\n');
});
app.get('/fail', () => {
  throw new Error('hono route failed');
});
export default app;
