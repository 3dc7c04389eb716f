package authswitch

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/antaca/antaca/specs"
)

// Link is one named peer of the switch (an acquirer or a scheme
// connection) as the links file describes it: where it connects, how its
// messages are encoded and what it may send. Zero values take the
// defaults of Config.
type Link struct {
	// Name identifies the link in logs and names its zone PIN key unless
	// ZoneKey does.
	Name string `json:"name"`
	// Listen is the listener address, e.g. ":8583".
	Listen string `json:"listen"`
	// Profile is "iso2003" or "iso87".
	Profile string `json:"profile"`
	// Variant is the encoding variant: "cmf" for iso2003; "ascii"
	// (default), "iso87a-bbitmap", "iso87a" or "iso87b" for iso87.
	Variant string `json:"variant,omitempty"`
	// Header is the length header: 2 (default) or 4 bytes.
	Header int `json:"header,omitempty"`
	// AcquirerIDs are the DE32 values the link may send; empty: any that
	// no other link lists.
	AcquirerIDs []string `json:"acquirer_ids,omitempty"`
	// ZoneKey is the id of the link's zone PIN key in the keys file;
	// default Name.
	ZoneKey string `json:"zone_key,omitempty"`
	// MaxInFlight bounds the requests in flight per connection.
	MaxInFlight int `json:"max_in_flight,omitempty"`
	// MaxConnections and MaxConnectionsPerSource bound the open
	// connections, in total and from one IP address.
	MaxConnections          int `json:"max_connections,omitempty"`
	MaxConnectionsPerSource int `json:"max_connections_per_source,omitempty"`
	// FirstMessageTimeout is the deadline of a new connection's first
	// message, as a Go duration ("10s").
	FirstMessageTimeout string `json:"first_message_timeout,omitempty"`
	// AllowedSources are IP addresses or CIDR prefixes; empty: any.
	AllowedSources []string `json:"allowed_sources,omitempty"`
}

// LinksFile is the JSON document of the links file.
type LinksFile struct {
	Links []Link `json:"links"`
}

// DefaultLinks are the two listeners of a development setup: iso2003 on
// :8583 and iso87 on :8587, each with the zone PIN key of its name.
func DefaultLinks() []Link {
	return []Link{
		{Name: ProfileISO2003, Listen: ":8583", Profile: ProfileISO2003},
		{Name: ProfileISO87, Listen: ":8587", Profile: ProfileISO87},
	}
}

// ReadLinks reads and checks a links file.
func ReadLinks(path string) ([]Link, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("links file: %w", err)
	}
	var f LinksFile
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("links file %s: %w", path, err)
	}
	if err := CheckLinks(f.Links); err != nil {
		return nil, fmt.Errorf("links file %s: %w", path, err)
	}
	return f.Links, nil
}

// WriteLinks writes links as a links file.
func WriteLinks(path string, links []Link) error {
	b, err := json.MarshalIndent(LinksFile{Links: links}, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// CheckLinks validates links: unique names and listen addresses, known
// profiles and variants, and acquirer IDs (up to 11 digits) that no two
// links share, so that an acquirer's messages, and the originals its
// reversals and completions are matched to, belong to one link.
func CheckLinks(links []Link) error {
	if len(links) == 0 {
		return errors.New("no links")
	}
	names, addrs, acquirers := map[string]bool{}, map[string]bool{}, map[string]string{}
	for i, l := range links {
		if l.Name == "" {
			return fmt.Errorf("link %d: no name", i+1)
		}
		if names[l.Name] {
			return fmt.Errorf("link %s: name used twice", l.Name)
		}
		names[l.Name] = true
		if l.Listen == "" || addrs[l.Listen] {
			return fmt.Errorf("link %s: listen address %q empty or used twice", l.Name, l.Listen)
		}
		addrs[l.Listen] = true
		if _, err := l.Config(nil); err != nil {
			return err
		}
		for _, a := range l.AcquirerIDs {
			if len(a) == 0 || len(a) > 11 || !digits(a) {
				return fmt.Errorf("link %s: acquirer id %q is not n..11", l.Name, a)
			}
			if other, ok := acquirers[a]; ok {
				return fmt.Errorf("link %s: acquirer id %s is also link %s's", l.Name, a, other)
			}
			acquirers[a] = l.Name
		}
	}
	return nil
}

// Config is the switch configuration of the link; others are the
// acquirer IDs the other links list, refused on this one when it lists
// none itself. Logger, Registerer and the like are left to the caller.
func (l Link) Config(others []string) (Config, error) {
	c := Config{
		Addr: l.Listen, Profile: l.Profile, Link: l.Name, Variant: l.Variant, Header: l.Header,
		AcquirerIDs: l.AcquirerIDs, ZoneKey: l.ZoneKey, MaxInFlight: l.MaxInFlight,
		MaxConnections: l.MaxConnections, MaxConnectionsPerSource: l.MaxConnectionsPerSource,
	}
	if len(l.AcquirerIDs) == 0 {
		c.OtherAcquirerIDs = others
	}
	if c.ZoneKey == "" {
		c.ZoneKey = l.Name
	}
	if _, err := lookupProfile(l.Profile); err != nil {
		return c, fmt.Errorf("link %s: %w", l.Name, err)
	}
	if _, err := specs.ISOSpecVariant(l.Profile, l.Variant); err != nil {
		return c, fmt.Errorf("link %s: %w", l.Name, err)
	}
	if l.Header != 0 && l.Header != 2 && l.Header != 4 {
		return c, fmt.Errorf("link %s: length header of %d bytes (want 2 or 4)", l.Name, l.Header)
	}
	if l.FirstMessageTimeout != "" {
		d, err := time.ParseDuration(l.FirstMessageTimeout)
		if err != nil || d <= 0 {
			return c, fmt.Errorf("link %s: first_message_timeout %q: want a duration such as \"10s\"", l.Name, l.FirstMessageTimeout)
		}
		c.FirstMessageTimeout = d
	}
	for _, s := range l.AllowedSources {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			a, aerr := netip.ParseAddr(s)
			if aerr != nil {
				return c, fmt.Errorf("link %s: allowed source %q is not an address or prefix", l.Name, s)
			}
			p = netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen())
		}
		c.AllowedSources = append(c.AllowedSources, p.Masked())
	}
	return c, nil
}

// Configs turns checked links into switch configurations.
func Configs(links []Link) ([]Config, error) {
	if err := CheckLinks(links); err != nil {
		return nil, err
	}
	out := make([]Config, 0, len(links))
	for _, l := range links {
		var others []string
		for _, o := range links {
			if o.Name != l.Name {
				others = append(others, o.AcquirerIDs...)
			}
		}
		c, err := l.Config(others)
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	return out, nil
}
