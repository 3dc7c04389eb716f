package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/antaca/antaca/ledger/ledgertest"
)

// TestDemoTwice: `antaca demo` creates the demo data once and prints the
// same data on a second run (it failed on the existing demo admin).
func TestDemoTwice(t *testing.T) {
	url := ledgertest.URL(t)
	dir, err := os.MkdirTemp("", "antaca-demo-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	run := func() Demo {
		t.Helper()
		var out bytes.Buffer
		args := []string{"-database-url", url, "-data", dir, "-keys", filepath.Join(dir, "keys.json"), "-log-level", "error", "-json"}
		if err := demo(context.Background(), args, &out); err != nil {
			t.Fatalf("antaca demo: %v", err)
		}
		var d Demo
		if err := json.Unmarshal(out.Bytes(), &d); err != nil {
			t.Fatalf("demo output: %v", err)
		}
		return d
	}
	first, second := run(), run()
	if first.CardID == 0 || first.CardID != second.CardID || first.CustomerID != second.CustomerID || first.AdminUser != second.AdminUser {
		t.Fatalf("second run: card %d customer %d admin %q, want the first run's %d %d %q",
			second.CardID, second.CustomerID, second.AdminUser, first.CardID, first.CustomerID, first.AdminUser)
	}
	// The demo's money has an allowed source (bootstrap, actor demo):
	// `antaca ledger verify` is clean after it.
	var out bytes.Buffer
	if err := verify(context.Background(), []string{"-database-url", url, "-log-level", "error"}, &out); err != nil {
		t.Fatalf("ledger verify after the demo: %v\n%s", err, out.String())
	}
}
