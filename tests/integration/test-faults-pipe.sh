#!/usr/bin/env bash
# test-faults-pipe.sh — test-faults.sh with every copy on the pipe data path (rows
# stream through the worker instead of remote()).
CHC_DATA_PATH=pipe exec "$(dirname "$0")/test-faults.sh"
