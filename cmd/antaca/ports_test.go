package main

import (
	"flag"
	"net"
	"strconv"
	"testing"
)

// TestDefaultPorts: every fixed port `make run` listens on is below 32768
// (outside Linux's ephemeral range, so an outgoing connection can never
// hold it), and the unauthenticated metrics listeners answer on loopback
// only unless a flag says otherwise.
func TestDefaultPorts(t *testing.T) {
	t.Setenv("ANTACA_SWITCH_METRICS_ADDR", "")
	t.Setenv("ANTACA_API_METRICS_ADDR", "")
	t.Setenv("ANTACA_ISO2003_ADDR", "")
	t.Setenv("ANTACA_ISO87_ADDR", "")
	t.Setenv("ANTACA_API_ADDR", "")
	var f serveFlags
	fs := flag.NewFlagSet("all", flag.ContinueOnError)
	f.register(fs, "all")
	if err := fs.Parse(nil); err != nil {
		t.Fatal(err)
	}
	port := func(addr string) int {
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("%q: %v", addr, err)
		}
		n, _ := strconv.Atoi(p)
		return n
	}
	for name, p := range map[string]int{"pg-port": f.pgPort, "iso2003": port(f.iso2003), "iso87": port(f.iso87), "api": port(f.apiAddr),
		"switch-metrics": port(f.switchMetrics), "api-metrics": port(f.apiMetrics)} {
		if p <= 0 || p >= 32768 {
			t.Errorf("-%s defaults to port %d, want a fixed port below 32768", name, p)
		}
	}
	for name, addr := range map[string]string{"switch-metrics": f.switchMetrics, "api-metrics": f.apiMetrics} {
		if host, _, _ := net.SplitHostPort(addr); host != "127.0.0.1" {
			t.Errorf("-%s defaults to %q, want loopback (127.0.0.1)", name, addr)
		}
	}
	fs = flag.NewFlagSet("all", flag.ContinueOnError)
	f.register(fs, "all")
	if err := fs.Parse([]string{"-switch-metrics", ":19102"}); err != nil || f.switchMetrics != ":19102" {
		t.Fatalf("-switch-metrics :19102: got %q, %v", f.switchMetrics, err)
	}
}
