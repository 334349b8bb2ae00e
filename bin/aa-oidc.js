#!/usr/bin/env node
// The compiled CLI; `npm ci` and `npm start` build it (package.json "prepare" and "prestart").
import '../dist/cli/run.js';
