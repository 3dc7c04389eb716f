// Package faulttest records what the fault and attack tests tried and what
// the system did, for the table in docs/faults.md. It is test support: only
// tests import it.
//
// When ANTACA_FAULT_REPORT names a file, every Record merges its row into
// the Markdown table in that file (rows keyed by area and fault, sorted),
// under a file lock, so tests of several packages running in parallel
// processes build one table. Without the variable rows only go to the
// test's log.
package faulttest

import (
	"bufio"
	"fmt"
	"os"
	"sort"
	"strings"
	"syscall"
	"testing"
)

// EnvReport names the file the table is written to.
const EnvReport = "ANTACA_FAULT_REPORT"

// Row is one fault or attack and what happened.
type Row struct {
	// Area groups rows: "switch", "ledger", "api", "process", "secrets".
	Area string
	// Fault is what the test did to the system.
	Fault string
	// Behaviour is what the system did, with the figures measured.
	Behaviour string
	// Verify is the outcome of ledger.Verify afterwards ("clean", or
	// "n/a" when the test moved no money).
	Verify string
	// Test is the test that produced the row.
	Test string
}

const header = "| area | fault or attack | what the system did | ledger verify | test |\n|---|---|---|---|---|\n"

// Record logs r and, when ANTACA_FAULT_REPORT is set, merges it into the
// table. A failed test records nothing: the table only shows what passed.
func Record(t testing.TB, r Row) {
	t.Helper()
	if r.Test == "" {
		r.Test = t.Name()
	}
	if r.Verify == "" {
		r.Verify = "n/a"
	}
	t.Logf("fault table: %s | %s | %s | verify %s", r.Area, r.Fault, r.Behaviour, r.Verify)
	path := os.Getenv(EnvReport)
	if path == "" {
		return
	}
	t.Cleanup(func() {
		if t.Failed() {
			return
		}
		if err := merge(path, r); err != nil {
			t.Errorf("fault report: %v", err)
		}
	})
}

func cell(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "|", "\\|"), "\n", " ")
}

func (r Row) line() string {
	return fmt.Sprintf("| %s | %s | %s | %s | `%s` |", cell(r.Area), cell(r.Fault), cell(r.Behaviour), cell(r.Verify), cell(r.Test))
}

// key identifies a row in the table: its area and fault cells.
func key(line string) string {
	parts := strings.SplitN(line, " | ", 3)
	if len(parts) < 3 {
		return line
	}
	return parts[0] + " | " + parts[1]
}

func merge(path string, r Row) error {
	lock, err := os.OpenFile(path+".lock", os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return fmt.Errorf("lock %s: %w", path, err)
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)

	// Text before the table (a document's introduction) is kept.
	var preamble strings.Builder
	rows := map[string]string{}
	if f, err := os.Open(path); err == nil {
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		inTable := false
		for sc.Scan() {
			l := sc.Text()
			if strings.HasPrefix(l, "| area |") || strings.HasPrefix(l, "|---") {
				inTable = true
				continue
			}
			if strings.HasPrefix(l, "| ") {
				inTable = true
				rows[key(l)] = l
				continue
			}
			if !inTable {
				preamble.WriteString(l + "\n")
			}
		}
		f.Close()
	}
	l := r.line()
	rows[key(l)] = l
	lines := make([]string, 0, len(rows))
	for _, v := range rows {
		lines = append(lines, v)
	}
	sort.Strings(lines)
	var b strings.Builder
	b.WriteString(preamble.String())
	b.WriteString(header)
	for _, v := range lines {
		b.WriteString(v + "\n")
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(b.String()), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
