// An Express app, unmodified: gatewire serve examples/express.cjs --http 8080
const express = require('express');

const app = express();
app.use(express.json());
app.get('/', (req, res) => res.type('text/plain').send('Hello from Express\n'));
app.get('/hello/:name', (req, res) => res.json({ hello: req.params.name, query: req.query, url: req.url, originalUrl: req.originalUrl }));
app.post('/echo', (req, res) => res.json({ body: req.body }));
app.get('/cookie', (req, res) => {
  res.cookie('a', '1');
  res.cookie('b', '2');
  res.send('two cookies\n');
});
app.get('/fail', () => {
  throw new Error('express route failed');
});
module.exports = app;
