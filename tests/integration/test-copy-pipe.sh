#!/usr/bin/env bash
# test-copy-pipe.sh — test-copy.sh with every copy on the pipe data path (rows
# stream through the worker instead of remote()).
CHC_DATA_PATH=pipe exec "$(dirname "$0")/test-copy.sh"
