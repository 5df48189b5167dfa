<?php
// The php group's hello page: the same response as every other target of the bench
// (200, Content-Type text/plain, body "Hello, World!\n").
header('Content-Type: text/plain');
echo "Hello, World!\n";
