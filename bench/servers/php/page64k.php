<?php
// The php group's 64 KiB page: 1024 lines of 64 bytes (65536 bytes), text/plain.
// bench/lib/groups.mjs (PAGE64K) builds the same body to check the first response.
header('Content-Type: text/plain');
echo str_repeat("Hello, World! This line is 64 bytes long, 1024 of them = 64 KiB\n", 1024);
