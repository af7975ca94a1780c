# Tests/lib/checks.sh — how the shell test scripts check, print and count (sourced; bash).
# The Python scripts do the same through Tests/lib/checks.py, so every suite reads alike:
#   ok    NAME
#   FAIL  NAME
#         the last 8 lines of what failed, indented
#   failed: NAME                   (once more for each failure, just before the summary)
#   SUITE: N passed, M failed
#
#   . "$ROOT/Tests/lib/checks.sh"
#   checks_workdir PREFIX          W = a new directory under /tmp, removed at exit unless a check failed
#   check NAME COMMAND...          passes when COMMAND succeeds (its output is the failure's detail)
#   expect_error NAME PATTERN COMMAND...   passes when COMMAND fails cleanly (exit 1-127) printing PATTERN
#   pass NAME / fail NAME [LOG]    a result decided by the script itself
#   checks_count_output NAME LOG STATUS   adds the ok/FAIL lines of a sub-test in another language
#   checks_summary SUITE           prints the summary line; its status is the suite's exit status

passed=0
failed=0
failed_names=() # repeated before the summary: a CI log is often read from its tail
W=

pass() { passed=$((passed + 1)); echo "ok    $*"; }

# fail NAME [LOG]: a failure, with the tail of LOG (a file) as its detail
fail() {
	failed=$((failed + 1)); failed_names+=("$1"); echo "FAIL  $1"
	[ $# -lt 2 ] || checks_detail "$2"
}

# checks_detail FILE: the last 8 lines of FILE, indented under the failure
checks_detail() { sed 's/^/      /' "$1" | tail -n 8; }

# The log of the command a check runs: in W when there is one (kept with it on failure).
checks_log() { echo "${W:-${TMPDIR:-/tmp}}/checks-last.log"; }

check() { # check NAME COMMAND...: pass when COMMAND succeeds
	local name="$1" log; shift
	log="$(checks_log)"
	if "$@" >"$log" 2>&1; then pass "$name"; else fail "$name" "$log"; fi
}

# expect_error NAME PATTERN COMMAND...: a non-zero exit below 128 (an error, not a crash) and
# PATTERN (extended regex, any case) in the output; the first matching line is shown.
expect_error() {
	local name="$1" pattern="$2" log rc; shift 2
	log="$(checks_log)"
	"$@" >"$log" 2>&1; rc=$?
	if [ $rc -ne 0 ] && [ $rc -lt 128 ] && grep -qiE "$pattern" "$log"; then
		pass "$name (exit $rc: $(grep -iE "$pattern" "$log" | head -1 | cut -c1-110))"
	else
		fail "$name (exit $rc)" "$log"
	fi
}

# checks_count_output NAME LOG STATUS: counts the "ok" and "FAIL" lines of LOG, the output of the
# sub-test NAME in another language (Tests/lib/checks.py prints the same lines), which exited with
# STATUS. No line at all, or a failing status without a FAIL line (a crash part-way, which would
# only lose the checks after it), is a failure of its own.
checks_count_output() {
	local ok bad
	ok=$(grep -c '^ok ' "$2"); bad=$(grep -c '^FAIL ' "$2")
	passed=$((passed + ok)); failed=$((failed + bad))
	local line
	while IFS= read -r line; do failed_names+=("$1: ${line#FAIL  }"); done < <(grep '^FAIL ' "$2")
	if [ $((ok + bad)) = 0 ]; then fail "$1 test produced no results" "$2"
	elif [ "$3" != 0 ] && [ "$bad" = 0 ]; then fail "$1 test exited with status $3" "$2"; fi
}

# checks_workdir PREFIX: W = a new empty directory under /tmp. Removed when the script exits
# with every check passed; kept (and named) when one failed, to look at what it left.
checks_workdir() {
	W="$(mktemp -d "${TMPDIR:-/tmp}/$1.XXXXXX")" || { echo "cannot create a work directory"; exit 1; }
	trap checks_cleanup EXIT
}

checks_cleanup() {
	[ -n "$W" ] || return 0
	if [ "$failed" = 0 ]; then rm -rf "$W"; else echo "kept  $W (a check failed)"; fi
}

# checks_summary SUITE: "SUITE: N passed, M failed"; returns 1 when any check failed.
checks_summary() {
	local name
	for name in "${failed_names[@]}"; do echo "failed: $name"; done
	echo "$1: $passed passed, $failed failed"
	[ "$failed" = 0 ]
}
