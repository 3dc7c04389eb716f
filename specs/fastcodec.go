package specs

import (
	"fmt"

	"github.com/antaca/antaca/internal/decimal"
	"github.com/moov-io/iso8583"
	"github.com/moov-io/iso8583/encoding"
	"github.com/moov-io/iso8583/field"
	"github.com/moov-io/iso8583/prefix"
)

// The fast codecs below replace moov-io's default packer of String fields.
//
// asciiCodec packs and unpacks the String fields in ASCII with an ASCII
// length prefix (fixed, or LL… variable) as moov-io's default packer does,
// byte for byte and error for error, in one allocation: moov's ASCII
// encoder grows its output a byte at a time and its prefixer formats the
// length with fmt.Sprintf, together about a tenth of the switch's CPU
// under load. Anything off its fast path (a non-ASCII byte, a length
// that does not fit, a prefix that is not plain digits) goes through
// moov's own steps, so errors read the same.
type asciiCodec struct{}

// asciiDigits returns the digits of an ASCII length prefixer (0: fixed);
// ok is false for any other prefixer.
func asciiDigits(p prefix.Prefixer) (digits int, ok bool) {
	switch p {
	case prefix.ASCII.Fixed:
		return 0, true
	case prefix.ASCII.L:
		return 1, true
	case prefix.ASCII.LL:
		return 2, true
	case prefix.ASCII.LLL:
		return 3, true
	case prefix.ASCII.LLLL:
		return 4, true
	}
	return 0, false
}

var pow10 = [...]int{1, 10, 100, 1000, 10000}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c > 127 {
			return false
		}
	}
	return true
}

func (asciiCodec) Pack(value []byte, spec *field.Spec) ([]byte, error) {
	if spec.Pad != nil {
		value = spec.Pad.Pad(value, spec.Length)
	}
	digits, _ := asciiDigits(spec.Pref)
	n := len(value)
	if !isASCII(value) || digits == 0 && n != spec.Length || digits > 0 && (n > spec.Length || n >= pow10[digits]) {
		return slowPack(value, spec)
	}
	out := make([]byte, digits+n)
	for i, v := digits-1, n; i >= 0; i-- {
		out[i] = byte('0' + v%10)
		v /= 10
	}
	copy(out[digits:], value)
	return out, nil
}

// slowPack is moov-io's default packer after padding.
func slowPack(value []byte, spec *field.Spec) ([]byte, error) {
	encoded, err := spec.Enc.Encode(value)
	if err != nil {
		return nil, fmt.Errorf("failed to encode content: %w", err)
	}
	prefix, err := spec.Pref.EncodeLength(spec.Length, len(value))
	if err != nil {
		return nil, fmt.Errorf("failed to encode length: %w", err)
	}
	return append(prefix, encoded...), nil
}

// Unpack returns the value as a slice of data: only String fields use
// this codec, and they copy it.
func (asciiCodec) Unpack(data []byte, spec *field.Spec) ([]byte, int, error) {
	digits, _ := asciiDigits(spec.Pref)
	length := spec.Length
	if digits > 0 {
		if len(data) < digits {
			return slowUnpack(data, spec)
		}
		length = 0
		for _, c := range data[:digits] {
			if c < '0' || c > '9' {
				return slowUnpack(data, spec)
			}
			length = length*10 + int(c-'0')
		}
		if length > spec.Length {
			return slowUnpack(data, spec)
		}
	}
	if len(data) < digits+length || !isASCII(data[digits:digits+length]) {
		return slowUnpack(data, spec)
	}
	value := data[digits : digits+length : digits+length]
	if spec.Pad != nil {
		value = spec.Pad.Unpad(value)
	}
	return value, digits + length, nil
}

// slowUnpack is moov-io's default unpacker.
func slowUnpack(data []byte, spec *field.Spec) ([]byte, int, error) {
	length, prefBytes, err := spec.Pref.DecodeLength(spec.Length, data)
	if err != nil {
		return nil, 0, fmt.Errorf("failed to decode length: %w", err)
	}
	value, read, err := spec.Enc.Decode(data[prefBytes:], length)
	if err != nil {
		return nil, 0, fmt.Errorf("failed to decode content: %w", err)
	}
	if spec.Pad != nil {
		value = spec.Pad.Unpad(value)
	}
	return value, read + prefBytes, nil
}

// bcdCodec packs and unpacks the String fields with a BCD length prefix
// (fixed, LL, LLL or LLLL) whose content is ASCII, right-padded BCD
// (moov-io's LBCD, jPOS's BCDInterpreter.RIGHT_PADDED) or left-padded BCD
// (BCD, LEFT_PADDED), byte for byte and error for error as moov-io's
// default packer, in one allocation. Off its fast path (a value that is
// not all digits, a length that does not fit, a nibble above 9) it goes
// through moov's own steps.
type bcdCodec struct{}

// bcdDigits returns the digits of a BCD length prefixer (0: fixed).
func bcdDigits(p prefix.Prefixer) (digits int, ok bool) {
	switch p {
	case prefix.BCD.Fixed:
		return 0, true
	case prefix.BCD.LL:
		return 2, true
	case prefix.BCD.LLL:
		return 3, true
	case prefix.BCD.LLLL:
		return 4, true
	}
	return 0, false
}

// content encodings of bcdCodec
const (
	contentASCII = iota
	contentRightBCD
	contentLeftBCD
	contentBinary // Binary fields: the bytes as they are
)

func contentOf(e encoding.Encoder) (int, bool) {
	switch e {
	case encoding.ASCII:
		return contentASCII, true
	case encoding.LBCD:
		return contentRightBCD, true
	case encoding.BCD:
		return contentLeftBCD, true
	case encoding.Binary:
		return contentBinary, true
	}
	return 0, false
}

func (bcdCodec) Pack(value []byte, spec *field.Spec) ([]byte, error) {
	if spec.Pad != nil {
		value = spec.Pad.Pad(value, spec.Length)
	}
	digits, _ := bcdDigits(spec.Pref)
	content, _ := contentOf(spec.Enc)
	n := len(value)
	if digits == 0 && n != spec.Length || digits > 0 && (n > spec.Length || n >= pow10[digits]) {
		return slowPack(value, spec)
	}
	encLen := n
	switch content {
	case contentBinary:
	case contentASCII:
		if !isASCII(value) {
			return slowPack(value, spec)
		}
	default:
		if !decimal.AllDigits(value) {
			return slowPack(value, spec)
		}
		encLen = (n + 1) / 2
	}
	pre := (digits + 1) / 2
	out := make([]byte, pre+encLen)
	for i, v := pre-1, n; i >= 0; i-- {
		out[i] = byte(v%10) | byte(v/10%10)<<4
		v /= 100
	}
	body := out[pre:]
	switch content {
	case contentASCII, contentBinary:
		copy(body, value)
	case contentRightBCD:
		for i, c := range value {
			if i%2 == 0 {
				body[i/2] = (c - '0') << 4
			} else {
				body[i/2] |= c - '0'
			}
		}
	case contentLeftBCD:
		odd := n % 2
		for i, c := range value {
			j := i + odd
			if j%2 == 0 {
				body[j/2] = (c - '0') << 4
			} else {
				body[j/2] |= c - '0'
			}
		}
	}
	return out, nil
}

// bcdNibbles reports whether every nibble of b is a decimal digit.
func bcdNibbles(b []byte) bool {
	for _, c := range b {
		if c>>4 > 9 || c&0x0f > 9 {
			return false
		}
	}
	return true
}

// Unpack returns ASCII content as a slice of data (String fields copy it)
// and BCD content decoded into a new slice.
func (bcdCodec) Unpack(data []byte, spec *field.Spec) ([]byte, int, error) {
	digits, _ := bcdDigits(spec.Pref)
	content, _ := contentOf(spec.Enc)
	length := spec.Length
	pre := (digits + 1) / 2
	if digits > 0 {
		if len(data) < pre || !bcdNibbles(data[:pre]) {
			return slowUnpack(data, spec)
		}
		length = 0
		for _, c := range data[:pre] {
			length = length*100 + int(c>>4)*10 + int(c&0x0f)
		}
		if length > spec.Length {
			return slowUnpack(data, spec)
		}
	}
	encLen := length
	if content == contentRightBCD || content == contentLeftBCD {
		encLen = (length + 1) / 2
	}
	if len(data) < pre+encLen {
		return slowUnpack(data, spec)
	}
	raw := data[pre : pre+encLen : pre+encLen]
	var value []byte
	switch content {
	case contentBinary:
		// Binary fields keep the slice they are given: a copy, as moov's.
		value = append([]byte(nil), raw...)
	case contentASCII:
		if !isASCII(raw) {
			return slowUnpack(data, spec)
		}
		value = raw
	default:
		if !bcdNibbles(raw) {
			return slowUnpack(data, spec)
		}
		value = make([]byte, length)
		skip := 0
		if content == contentLeftBCD {
			skip = length % 2
		}
		for i := range value {
			j := i + skip
			c := raw[j/2]
			if j%2 == 0 {
				c >>= 4
			}
			value[i] = '0' + c&0x0f
		}
	}
	if spec.Pad != nil {
		value = spec.Pad.Unpad(value)
	}
	return value, pre + encLen, nil
}

// nibbleBCD is the BCD of jPOS's BCDInterpreter (right-padded) for fields
// that are not only digits: each character '0'..'?' is its low nibble,
// so track 2's '=' is the nibble D, and each nibble n reads back as
// '0'+n. ISO87BPackager's DE35 uses it.
type nibbleBCD struct{}

func (nibbleBCD) Encode(src []byte) ([]byte, error) {
	out := make([]byte, (len(src)+1)/2)
	for i, c := range src {
		if c == 'D' || c == 'd' {
			c = '='
		}
		if c < '0' || c > '?' {
			return nil, fmt.Errorf("character %d is not BCD-encodable", i)
		}
		if i%2 == 0 {
			out[i/2] = (c - '0') << 4
		} else {
			out[i/2] |= c - '0'
		}
	}
	return out, nil
}

func (nibbleBCD) Decode(src []byte, length int) ([]byte, int, error) {
	if length < 0 {
		return nil, 0, fmt.Errorf("length should be positive, got %d", length)
	}
	read := (length + 1) / 2
	if len(src) < read {
		return nil, 0, fmt.Errorf("not enough data to decode. expected len %d, got %d", read, len(src))
	}
	out := make([]byte, length)
	for i := range out {
		c := src[i/2]
		if i%2 == 0 {
			c >>= 4
		}
		out[i] = '0' + c&0x0f
	}
	return out, read, nil
}

// useFastCodec gives every String field of spec (subfields included)
// that has moov-io's default packer asciiCodec or bcdCodec, when its
// encoding and prefix are theirs, and bcdCodec to the Binary fields with a
// BCD length prefix.
func useFastCodec(spec *iso8583.MessageSpec) {
	for _, f := range spec.Fields {
		useFastCodecOn(f)
	}
}

func useFastCodecOn(f field.Field) {
	s := f.Spec()
	if s == nil {
		return
	}
	for _, sub := range s.Subfields {
		useFastCodecOn(sub)
	}
	if s.Packer != nil || s.Unpacker != nil {
		return
	}
	switch f.(type) {
	case *field.String:
		if _, ok := asciiDigits(s.Pref); ok && s.Enc == encoding.ASCII {
			s.Packer, s.Unpacker = asciiCodec{}, asciiCodec{}
			return
		}
		if _, ok := bcdDigits(s.Pref); ok {
			if c, ok := contentOf(s.Enc); ok && c != contentBinary {
				s.Packer, s.Unpacker = bcdCodec{}, bcdCodec{}
			}
		}
	case *field.Binary:
		// Binary with a BCD length prefix (the CMF's LLLL-binary fields):
		// moov's BCD prefix decoder allocates a decoder table each time.
		if d, ok := bcdDigits(s.Pref); ok && d > 0 && s.Enc == encoding.Binary {
			s.Packer, s.Unpacker = bcdCodec{}, bcdCodec{}
		}
	}
}
