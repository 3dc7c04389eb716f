package specs

import (
	"fmt"
	"strings"
	"testing"

	"github.com/moov-io/iso8583"
	"github.com/moov-io/iso8583/field"
)

// TestFastCodecIsMoovs packs and unpacks values of every field given
// asciiCodec or bcdCodec, in every profile and variant, with the fast
// codec and with moov-io's default packer, and requires the same bytes,
// lengths and errors.
func TestFastCodecIsMoovs(t *testing.T) {
	fields, bcdFields, binaryFields := 0, 0, 0
	var all []*iso8583.MessageSpec
	for _, profile := range []string{"iso87", "iso2003"} {
		for _, v := range Variants(profile) {
			spec, err := ISOSpecVariant(profile, v)
			if err != nil {
				t.Fatal(err)
			}
			all = append(all, spec)
		}
	}
	for _, spec := range all {
		var walk func(name string, f field.Field)
		walk = func(name string, f field.Field) {
			s := f.Spec()
			for id, sub := range s.Subfields {
				walk(name+"."+id, sub)
			}
			_, isASCII := s.Packer.(asciiCodec)
			_, isBCD := s.Packer.(bcdCodec)
			if !isASCII && !isBCD {
				return
			}
			fields++
			if isBCD {
				bcdFields++
			}
			moov := *s
			moov.Packer, moov.Unpacker = nil, nil
			if _, ok := f.(*field.Binary); ok {
				binaryFields++
				for _, v := range append(packValues(s.Length), unpackInputs(s.Length)...) {
					fast, slow := field.NewBinaryValue([]byte(v)), field.NewBinaryValue([]byte(v))
					fast.SetSpec(s)
					slow.SetSpec(&moov)
					got, gotErr := fast.Pack()
					want, wantErr := slow.Pack()
					if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || string(got) != string(want) {
						t.Errorf("%s %s: pack %q: got %q, %v; moov %q, %v", spec.Name[:14], name, v, got, gotErr, want, wantErr)
					}
					fb, sb := field.NewBinary(s), field.NewBinary(&moov)
					n, gotErr := fb.Unpack([]byte(v))
					m, wantErr := sb.Unpack([]byte(v))
					if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || n != m || string(fb.Value()) != string(sb.Value()) {
						t.Errorf("%s %s: unpack %q: got %q (%d), %v; moov %q (%d), %v", spec.Name[:14], name, v, fb.Value(), n, gotErr, sb.Value(), m, wantErr)
					}
				}
				return
			}
			for _, v := range packValues(s.Length) {
				fast, slow := field.NewStringValue(v), field.NewStringValue(v)
				fast.SetSpec(s)
				slow.SetSpec(&moov)
				got, gotErr := fast.Pack()
				want, wantErr := slow.Pack()
				if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || string(got) != string(want) {
					t.Errorf("%s %s: pack %q: got %q, %v; moov %q, %v", spec.Name[:14], name, v, got, gotErr, want, wantErr)
				}
			}
			for _, data := range unpackInputs(s.Length) {
				fast, slow := field.NewString(s), field.NewString(&moov)
				n, gotErr := fast.Unpack([]byte(data))
				m, wantErr := slow.Unpack([]byte(data))
				if fmt.Sprint(gotErr) != fmt.Sprint(wantErr) || n != m || fast.Value() != slow.Value() {
					t.Errorf("%s %s: unpack %q: got %q (%d), %v; moov %q (%d), %v", spec.Name[:14], name, data, fast.Value(), n, gotErr, slow.Value(), m, wantErr)
				}
			}
		}
		for id, f := range spec.Fields {
			walk(fmt.Sprint(id), f)
		}
	}
	if fields < 300 || bcdFields < 150 || binaryFields < 40 {
		t.Fatalf("the fast codecs serve %d fields (%d BCD); want the String fields of every variant and the CMF's BCD-prefixed binary ones (%d)", fields, bcdFields, binaryFields)
	}
}

func packValues(length int) []string {
	vs := []string{"", "0", "7", "12", "abc", "é", "a\x80b", "  x ", strings.Repeat("9", 9), strings.Repeat("5", 10), strings.Repeat("4", 99), strings.Repeat("3", 100)}
	for _, n := range []int{length - 1, length, length + 1} {
		if n >= 0 {
			vs = append(vs, strings.Repeat("8", n), strings.Repeat("x", n-min(n, 1))+"é")
		}
	}
	return vs
}

func unpackInputs(length int) []string {
	in := []string{"", "0", "00", "000", "0000", "1", "01", "+5abcdef", "-1abc", " 5abc", "ab", "99", "999", "9999", "05é", "05ab\xffcd", "0",
		"\x05\x12\x34\x5f", "\x05\x12\x34\x56", "\x00\x42\x12", "\x03abc", "\x1a12345", "\x99\x99", "\x00\x03\x12\x30", "\x12\x3a\x45\x67\x89\x01\x23\x45\x67\x89"}
	for _, n := range []int{length - 1, length, length + 1} {
		if n < 0 {
			continue
		}
		body := strings.Repeat("7", n)
		for d := 1; d <= 4; d++ {
			in = append(in, fmt.Sprintf("%0*d", d, n)+body, fmt.Sprintf("%0*d", d, n)+body[:max(0, n-1)])
		}
		in = append(in, body, body+"tail", "é"+body, strings.Repeat("0", n), strings.Repeat("\x12", n), strings.Repeat("\x34", n/2+1))
	}
	return in
}
