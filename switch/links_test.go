package authswitch

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/antaca/antaca/cardhost"
)

// TestReadLinks reads a links file with every setting, and refuses
// acquirer IDs shared by two links, unknown variants, headers and fields.
func TestReadLinks(t *testing.T) {
	dir := t.TempDir()
	write := func(body string) string {
		p := filepath.Join(dir, "links.json")
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := `{"links": [
	  {"name": "acq-a", "listen": ":9583", "profile": "iso2003", "acquirer_ids": ["4830123"], "zone_key": "iso2003",
	   "max_in_flight": 32, "max_connections": 10, "max_connections_per_source": 2, "first_message_timeout": "3s",
	   "allowed_sources": ["10.0.0.0/8", "127.0.0.1"]},
	  {"name": "visa", "listen": ":9587", "profile": "iso87", "variant": "iso87b", "header": 4}
	]}`
	links, err := ReadLinks(write(good))
	if err != nil {
		t.Fatal(err)
	}
	cfgs, err := Configs(links)
	if err != nil {
		t.Fatal(err)
	}
	a, v := cfgs[0], cfgs[1]
	if a.Link != "acq-a" || a.ZoneKey != "iso2003" || a.MaxConnectionsPerSource != 2 || a.FirstMessageTimeout.Seconds() != 3 ||
		len(a.AllowedSources) != 2 || a.AllowedSources[1].String() != "127.0.0.1/32" || a.AcquirerIDs[0] != "4830123" {
		t.Errorf("link a: %+v", a)
	}
	if v.Variant != "iso87b" || v.Header != 4 || v.ZoneKey != "visa" || len(v.OtherAcquirerIDs) != 1 || v.OtherAcquirerIDs[0] != "4830123" {
		t.Errorf("link visa: %+v", v)
	}
	for name, body := range map[string]string{
		"shared acquirer":      strings.Replace(good, `"header": 4}`, `"header": 4, "acquirer_ids": ["4830123"]}`, 1),
		"unknown variant":      strings.Replace(good, `"iso87b"`, `"ebcdic"`, 1),
		"cmf variant on iso87": strings.Replace(good, `"iso87b"`, `"cmf"`, 1),
		"header 3":             strings.Replace(good, `"header": 4`, `"header": 3`, 1),
		"unknown field":        strings.Replace(good, `"header": 4`, `"headr": 4`, 1),
		"same address":         strings.Replace(good, `":9587"`, `":9583"`, 1),
		"bad source":           strings.Replace(good, `"127.0.0.1"`, `"localhost"`, 1),
		"bad acquirer":         strings.Replace(good, `"4830123"`, `"48301X"`, 1),
	} {
		if _, err := ReadLinks(write(body)); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// TestE2ELinkAcquirers: a link refuses a DE32 that is not one of its
// acquirers (format error, nothing held), and a reversal on another link
// never reaches an original of this one, while on its own link it does.
func TestE2ELinkAcquirers(t *testing.T) {
	e := newE2E(t, ProfileISO2003, func(c *Config) { c.AcquirerIDs = []string{"123456"} })
	card := e.virtualCard(e.prog, 10_000)

	stranger := e.msg("100", card, 1_000, map[int]string{32: "999999"})
	resp := e.send(stranger)
	e.expect(resp, cardhost.FormatError)
	if get(t, resp, 41) != get(t, stranger, 41) {
		t.Errorf("DE41 not echoed")
	}
	e.expectBalance(card.AccountID, 10_000, 0)

	orig, resp := e.auth(card, 1_000, nil)
	e.expect(resp, cardhost.Approved)
	e.expectBalance(card.AccountID, 10_000, 1_000)

	// Link B: acquirer 654321, on the same host.
	addrB := e.serve(e.host, func(c *Config) { c.AcquirerIDs, c.Link = []string{"654321"}, "b" })
	b := dial(t, addrB, ProfileISO2003)
	rev := e.follow("400", orig, card, 1_000, map[int]string{32: "654321"})
	e.expect(sendOn(t, b, rev), cardhost.FormatError)
	e.expectBalance(card.AccountID, 10_000, 1_000)

	// The same reversal on link A, from A's acquirer, releases the hold.
	e.expect(e.send(e.follow("400", orig, card, 1_000, nil)), cardhost.Approved)
	e.expectBalance(card.AccountID, 10_000, 0)
}
