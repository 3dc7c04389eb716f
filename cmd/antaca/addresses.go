package main

import (
	"encoding/json"
	"flag"
	"os"
	"sync"
)

// addresses are the listeners a running `antaca all|switch|api` really
// uses, written to <data>/addresses.json while it runs, so that `antaca
// demo` and `antaca call` print and use them instead of the defaults.
type addresses struct {
	path string
	mu   sync.Mutex
	m    map[string]string // iso2003, iso87: host:port; api: https URL
}

func (a *addresses) set(k, v string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.m == nil {
		a.m = map[string]string{}
	}
	a.m[k] = hostPort(v)
	if k == "api" {
		a.m[k] = v
	}
}

func (a *addresses) write() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	b, _ := json.MarshalIndent(a.m, "", "  ")
	return os.WriteFile(a.path, append(b, '\n'), 0o644)
}

func (a *addresses) remove() { os.Remove(a.path) }

// readAddresses returns the addresses a running process wrote in path, or
// nil.
func readAddresses(path string) map[string]string {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil
	}
	var m map[string]string
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return m
}

// applyAddresses puts the running process's addresses into d, except where
// the command's own flags were set explicitly.
func applyAddresses(d *Demo, m map[string]string, fs *flag.FlagSet) {
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for k, p := range map[string]*string{"iso2003": &d.ISO2003Addr, "iso87": &d.ISO87Addr} {
		switch v := m[k]; {
		case set[k]:
		case v != "":
			*p = v
		default:
			*p = "off" // the running process has no such listener
		}
	}
	if v := m["api"]; v != "" && !set["api"] {
		d.APIURL = v
	}
}
