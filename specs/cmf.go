package specs

import (
	"errors"
	"fmt"
	"strconv"

	"github.com/antaca/antaca/internal/decimal"
)

// The jPOS CMF (profile iso2003) carries some data elements as sub-fields
// that moov-io has no field type for: IFB_AMOUNT2003 amounts (currency n3,
// minor unit n1, amount n12), DE30 (two of them), and DE43 and DE49
// (IFB_LLLLBINARY holding a bitmap and sub-fields, cmf.xml's
// GenericSubFieldPackager). The spec carries those fields whole (as jPOS's
// top-level classes do); the functions here read and build their inside,
// byte for byte as cmf.xml does.

// ErrCMF is returned for a CMF sub-field structure that cannot be read.
var ErrCMF = errors.New("malformed CMF sub-fields")

// Amount2003 is one IFB_AMOUNT2003 amount.
type Amount2003 struct {
	Currency  string // ISO 4217 numeric, n3
	MinorUnit int    // digits after the decimal point, n1
	Amount    int64  // in minor units, n12
}

// ParseAmount2003 reads a 16-digit IFB_AMOUNT2003 value.
func ParseAmount2003(s string) (Amount2003, error) {
	if len(s) != 16 || !decimal.AllDigits(s) {
		return Amount2003{}, fmt.Errorf("amount %w: want 16 digits", ErrCMF)
	}
	v, _ := strconv.ParseInt(s[4:], 10, 64)
	return Amount2003{Currency: s[:3], MinorUnit: int(s[3] - '0'), Amount: v}, nil
}

// String formats a as 16 digits; the amount must be 0..999999999999.
func (a Amount2003) String() string {
	var b [16]byte
	copy(b[:3], a.Currency)
	b[3] = byte('0' + a.MinorUnit%10)
	v := a.Amount
	for i := 15; i >= 4; i-- {
		b[i] = byte('0' + v%10)
		v /= 10
	}
	return string(b[:])
}

// minorUnits are the ISO 4217 currencies whose minor unit is not 2.
var minorUnits = map[string]int{
	"048": 3, "368": 3, "400": 3, "414": 3, "434": 3, "512": 3, "788": 3, // BHD IQD JOD KWD LYD OMR TND
	"108": 0, "152": 0, "174": 0, "262": 0, "324": 0, "352": 0, "392": 0, "410": 0, "548": 0, // BIF CLP KMF DJF GNF ISK JPY KRW VUV
	"600": 0, "646": 0, "704": 0, "800": 0, "950": 0, "952": 0, "953": 0, // PYG RWF VND UGX XAF XOF XPF
	"990": 4, "927": 4, // CLF UYW
}

// MinorUnit is the ISO 4217 minor unit (exponent) of a numeric currency
// code: 2 unless the table says otherwise.
func MinorUnit(currency string) int {
	if u, ok := minorUnits[currency]; ok {
		return u
	}
	return 2
}

// AmountsOriginal reads CMF DE30 (16 bytes of BCD): the original amount
// transaction and the original amount reconciliation.
func AmountsOriginal(b []byte) (txn, recon Amount2003, err error) {
	if len(b) != 16 || !bcdNibbles(b) {
		return txn, recon, fmt.Errorf("DE30 %w", ErrCMF)
	}
	var d [32]byte
	for i, c := range b {
		d[2*i], d[2*i+1] = '0'+c>>4, '0'+c&0x0f
	}
	if txn, err = ParseAmount2003(string(d[:16])); err != nil {
		return txn, recon, err
	}
	recon, err = ParseAmount2003(string(d[16:]))
	return txn, recon, err
}

// PackAmountsOriginal builds CMF DE30 from its two amounts.
func PackAmountsOriginal(txn, recon Amount2003) []byte {
	s := txn.String() + recon.String()
	out := make([]byte, 16)
	for i := range out {
		out[i] = (s[2*i]-'0')<<4 | (s[2*i+1] - '0')
	}
	return out
}

// sub-field classes of cmf.xml's DE43 and DE49
type subKind uint8

const (
	subChar    subKind = iota + 1 // IF_CHAR n: n ASCII characters
	subLLChar                     // IFB_LLCHAR: 1-byte BCD length, ASCII
	subLLLChar                    // IFB_LLLCHAR: 2-byte BCD length, ASCII
	subNumeric                    // IFB_NUMERIC n: right-padded BCD
)

type subSpec struct {
	kind   subKind
	length int
}

// SubfieldTable is the layout of one composite CMF field: sub-field n is
// at index n (0 unused).
type SubfieldTable []subSpec

// CardAcceptorTable is cmf.xml's DE43: 2 name, 3 street, 4 city, 5 region,
// 6 postal code, 7 country, 8 phone, 9 customer service phone,
// 10 additional contact, 11 URL, 12 e-mail.
var CardAcceptorTable = SubfieldTable{
	2: {subLLChar, 50}, 3: {subLLChar, 99}, 4: {subLLChar, 50}, 5: {subChar, 3}, 6: {subChar, 10}, 7: {subChar, 3},
	8: {subChar, 16}, 9: {subChar, 16}, 10: {subLLChar, 30}, 11: {subLLLChar, 255}, 12: {subLLChar, 99},
}

// VerificationTable is cmf.xml's DE49: 1 additional identification type,
// 2 card verification data (CVC2, n4), 3 billing address compressed,
// 4 billing postal code, 5 billing street address, 6 address verification
// result.
var VerificationTable = SubfieldTable{
	1: {subNumeric, 1}, 2: {subNumeric, 4}, 3: {subChar, 16}, 4: {subChar, 10}, 5: {subChar, 40}, 6: {subChar, 1},
}

// ParseSubfields reads a composite CMF field: an 8-byte bitmap, then each
// sub-field it names in order. Every byte must belong to a sub-field of
// the table, and text must be printable ASCII: anything else is ErrCMF.
// The result has one entry per index of the table ("" when absent).
func ParseSubfields(b []byte, table SubfieldTable) ([]string, error) {
	if len(b) < 8 || b[0]&0x80 != 0 {
		return nil, fmt.Errorf("bitmap %w", ErrCMF)
	}
	out := make([]string, len(table))
	off := 8
	for n := 2; n <= 64; n++ {
		if b[(n-1)/8]&(0x80>>((n-1)%8)) == 0 {
			continue
		}
		if n >= len(table) || table[n].kind == 0 {
			return nil, fmt.Errorf("sub-field %d not defined: %w", n, ErrCMF)
		}
		s := table[n]
		length, pre := s.length, 0
		switch s.kind {
		case subLLChar:
			pre = 1
		case subLLLChar:
			pre = 2
		}
		if pre > 0 {
			if len(b) < off+pre || !bcdNibbles(b[off:off+pre]) {
				return nil, fmt.Errorf("sub-field %d length %w", n, ErrCMF)
			}
			length = 0
			for _, c := range b[off : off+pre] {
				length = length*100 + int(c>>4)*10 + int(c&0x0f)
			}
			if length > s.length {
				return nil, fmt.Errorf("sub-field %d longer than %d: %w", n, s.length, ErrCMF)
			}
			off += pre
		}
		if s.kind == subNumeric {
			enc := (length + 1) / 2
			if len(b) < off+enc || !bcdNibbles(b[off:off+enc]) {
				return nil, fmt.Errorf("sub-field %d %w", n, ErrCMF)
			}
			d := make([]byte, length)
			for i := range d {
				c := b[off+i/2]
				if i%2 == 0 {
					c >>= 4
				}
				d[i] = '0' + c&0x0f
			}
			out[n] = string(d)
			off += enc
			continue
		}
		if len(b) < off+length || !printable(b[off:off+length]) {
			return nil, fmt.Errorf("sub-field %d %w", n, ErrCMF)
		}
		out[n] = string(b[off : off+length])
		off += length
	}
	if off != len(b) {
		return nil, fmt.Errorf("%d bytes after the last sub-field: %w", len(b)-off, ErrCMF)
	}
	return out, nil
}

// PackSubfields builds a composite CMF field from values indexed by
// sub-field number ("" for absent). Fixed text is padded with spaces.
func PackSubfields(table SubfieldTable, values map[int]string) ([]byte, error) {
	out := make([]byte, 8, 64)
	for n := 2; n < len(table); n++ {
		v, ok := values[n]
		if !ok || v == "" {
			continue
		}
		s := table[n]
		if len(v) > s.length {
			return nil, fmt.Errorf("sub-field %d longer than %d", n, s.length)
		}
		out[(n-1)/8] |= 0x80 >> ((n - 1) % 8)
		switch s.kind {
		case subLLChar:
			out = append(out, byte(len(v)/10)<<4|byte(len(v)%10))
		case subLLLChar:
			out = append(out, byte(len(v)/1000)<<4|byte(len(v)/100%10), byte(len(v)/10%10)<<4|byte(len(v)%10))
		case subChar:
			for len(v) < s.length {
				v += " "
			}
		case subNumeric:
			for len(v) < s.length {
				v = "0" + v
			}
			if !decimal.AllDigits(v) {
				return nil, fmt.Errorf("sub-field %d not numeric", n)
			}
			for i := 0; i < len(v); i += 2 {
				c := (v[i] - '0') << 4
				if i+1 < len(v) {
					c |= v[i+1] - '0'
				}
				out = append(out, c)
			}
			continue
		}
		out = append(out, v...)
	}
	return out, nil
}

// printable reports whether b is printable ASCII (space to tilde).
func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}
