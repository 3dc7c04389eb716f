package authswitch

import (
	"strconv"
	"strings"
	"testing"
)

// FuzzDE48 feeds DE48 values to the subelement parser (tag n2, length n2,
// value): it must not panic, and what it accepts must read back the same
// when written again in tag order.
func FuzzDE48(f *testing.F) {
	for _, s := range []string{"9203123", "92031239901X", "", "9", "92", "9203", "92031", "9299123", "ab03123", "920012"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tags, ok := parseSubelements(s)
		if !ok {
			return
		}
		// Every accepted tag is two digits and its value fits a
		// two-digit length; the values' lengths and the headers add up to
		// no more than the input (a repeated tag keeps its last value).
		total := 0
		for tag, v := range tags {
			if len(tag) != 2 || !digits(tag) || len(v) > 99 {
				t.Fatalf("accepted tag %q with a value of %d bytes", tag, len(v))
			}
			total += 4 + len(v)
		}
		if total > len(s) {
			t.Fatalf("subelements of %d bytes from %d bytes of input", total, len(s))
		}
		var b strings.Builder
		for tag, v := range tags {
			b.WriteString(tag)
			b.WriteString(twoDigits(len(v)))
			b.WriteString(v)
		}
		again, ok := parseSubelements(b.String())
		if !ok || len(again) != len(tags) {
			t.Fatalf("re-encoded subelements do not parse back")
		}
		for tag, v := range tags {
			if again[tag] != v {
				t.Fatalf("tag %s: re-encoded value differs", tag)
			}
		}
	})
}

func twoDigits(n int) string {
	s := strconv.Itoa(n)
	if len(s) < 2 {
		s = "0" + s
	}
	return s
}

// FuzzSwitchTrack2 feeds DE35 values to the switch's track 2 reader: no
// panic, and an accepted value gives a 12-19 digit PAN and a YYMM of
// digits.
func FuzzSwitchTrack2(f *testing.F) {
	for _, s := range []string{"4000001234567899=28121010000000000", ";4000001234567899D2812", "4000001234567899=", "=2812", "400000123456=2812", "40000012345678901234=2812"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		pan, exp, ok := parseTrack2(s)
		if !ok {
			return
		}
		if len(pan) < 12 || len(pan) > 19 || !digits(pan) || len(exp) != 4 || !digits(exp) {
			t.Fatalf("accepted PAN of %d characters, expiry of %d", len(pan), len(exp))
		}
	})
}

// FuzzOriginalData feeds DE90/DE56 values to the original data parser of
// both profiles: no panic, and an accepted value has a four-digit MTI and a
// STAN of the profile's width.
func FuzzOriginalData(f *testing.F) {
	f.Add("0100000001060112000000000123456000000000000", "123456")
	f.Add("21000000000000012026060114000006123456", "123456")
	f.Add("2100000000000001202606011400009912", "")
	f.Add("", "")
	servers := map[string]*Server{}
	for _, p := range bothProfiles {
		servers[p] = newBareServer(f, p, newTestAuthorizer())
	}
	f.Fuzz(func(t *testing.T, v, acquirer string) {
		for p, s := range servers {
			od, ok := s.parseOriginal(v, acquirer)
			if !ok {
				continue
			}
			if len(od.MTI) != 4 || !digits(od.MTI) || len(od.STAN) != s.p.stanLen {
				t.Fatalf("%s: accepted MTI %q STAN of %d digits", p, od.MTI, len(od.STAN))
			}
		}
	})
}
