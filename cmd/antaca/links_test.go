package main

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	authswitch "github.com/antaca/antaca/switch"
)

// TestSwitchLinks: without -links the switch writes <data>/links.json with
// iso2003 on :8583 and iso87 on :8587 and reads it back; a file that is
// there is what runs; -iso2003/-iso87 given are a shorthand that ignores it.
func TestSwitchLinks(t *testing.T) {
	dir := t.TempDir()
	f := serveFlags{iso2003: ":8583", iso87: ":8587"}
	f.dataDir = dir
	log := slog.New(slog.DiscardHandler)
	cfgs, err := f.switchLinks(log)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfgs) != 2 || cfgs[0].Addr != ":8583" || cfgs[0].Profile != "iso2003" || cfgs[1].Addr != ":8587" || cfgs[1].Profile != "iso87" ||
		cfgs[0].ZoneKey != "iso2003" || cfgs[1].ZoneKey != "iso87" {
		t.Fatalf("default links: %+v", cfgs)
	}
	path := filepath.Join(dir, "links.json")
	links, err := authswitch.ReadLinks(path)
	if err != nil || len(links) != 2 {
		t.Fatalf("links.json written: %v, %d links", err, len(links))
	}
	links[1].Variant, links[1].Header = "iso87a", 4
	if err := authswitch.WriteLinks(path, links); err != nil {
		t.Fatal(err)
	}
	if cfgs, err = f.switchLinks(log); err != nil || cfgs[1].Variant != "iso87a" || cfgs[1].Header != 4 {
		t.Fatalf("edited file: %v %+v", err, cfgs)
	}
	f.isoShorthand, f.iso87 = true, ""
	if cfgs, err = f.switchLinks(log); err != nil || len(cfgs) != 1 || cfgs[0].Variant == "iso87a" {
		t.Fatalf("shorthand: %v %+v", err, cfgs)
	}
	f.links = filepath.Join(dir, "missing.json")
	if _, err := f.switchLinks(log); err == nil {
		t.Error("a -links file that is missing: no error")
	}
	if _, err := os.Stat(f.links); err == nil {
		t.Error("a -links file that is missing was written")
	}
}
