package specs

import (
	"fmt"

	"github.com/moov-io/iso8583"
	"github.com/moov-io/iso8583/encoding"
	"github.com/moov-io/iso8583/field"
	"github.com/moov-io/iso8583/prefix"
)

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

// useASCIICodec gives every ASCII String field of spec (subfields
// included) that has moov-io's default packer asciiCodec instead.
func useASCIICodec(spec *iso8583.MessageSpec) {
	for _, f := range spec.Fields {
		useASCIICodecOn(f)
	}
}

func useASCIICodecOn(f field.Field) {
	s := f.Spec()
	if s == nil {
		return
	}
	for _, sub := range s.Subfields {
		useASCIICodecOn(sub)
	}
	if _, isString := f.(*field.String); !isString || s.Enc != encoding.ASCII || s.Packer != nil || s.Unpacker != nil {
		return
	}
	if _, ok := asciiDigits(s.Pref); ok {
		s.Packer, s.Unpacker = asciiCodec{}, asciiCodec{}
	}
}
