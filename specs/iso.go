package specs

import (
	_ "embed"
	"fmt"
	"sync"

	"github.com/moov-io/iso8583"
	"github.com/moov-io/iso8583/field"
	moovspecs "github.com/moov-io/iso8583/specs"
)

// The ISO 8583 specs of the switch, as moov-io spec-builder JSON, each
// generated from the jPOS packager it is named after (field classes and
// lengths one for one; docs/iso8583.md lists them and where they differ
// from moov-io's types).
var (
	//go:embed iso2003.json
	iso2003JSON []byte
	//go:embed iso87.json
	iso87JSON []byte
	//go:embed iso87a.json
	iso87aJSON []byte
	//go:embed iso87a-bbitmap.json
	iso87aBBitmapJSON []byte
	//go:embed iso87b.json
	iso87bJSON []byte
)

// Encoding variants of the profiles. iso2003 has one, the jPOS CMF; iso87
// has four, chosen per link.
const (
	// VariantCMF is iso2003 as jPOS's cmf.xml packs it: BCD numerics and
	// BCD length prefixes, binary bitmap.
	VariantCMF = "cmf"
	// VariantASCII is iso87 with ASCII numerics and prefixes (jPOS
	// ISO87APackager's fields), a binary bitmap and binary DE52, DE64,
	// DE65, DE96 and DE128: what most ASCII host links carry.
	VariantASCII = "ascii"
	// VariantISO87ABBitmap is jPOS ISO87APackagerBBitmap: as VariantASCII
	// with DE52, DE64, DE65, DE96 and DE128 as uppercase hex text.
	VariantISO87ABBitmap = "iso87a-bbitmap"
	// VariantISO87A is jPOS ISO87APackager: as VariantISO87ABBitmap with
	// the bitmap as 16 hex characters each.
	VariantISO87A = "iso87a"
	// VariantISO87B is jPOS ISO87BPackager: BCD numerics (left-padded) and
	// BCD length prefixes, binary bitmap.
	VariantISO87B = "iso87b"
)

type cachedSpec struct {
	once sync.Once
	spec *iso8583.MessageSpec
	err  error
}

func (c *cachedSpec) load(name string, data []byte) (*iso8583.MessageSpec, error) {
	c.once.Do(func() {
		c.spec, c.err = moovspecs.ImportJSON(data)
		if c.err != nil {
			c.err = fmt.Errorf("import %s spec: %w", name, c.err)
			return
		}
		if name == VariantISO87B {
			// ISO87BPackager packs track 2 as IFB_LLNUM: '=' is the nibble D.
			c.spec.Fields[35].Spec().Enc = nibbleBCD{}
		}
		useFastCodec(c.spec)
	})
	return c.spec, c.err
}

var variants = map[string]map[string]struct {
	data  []byte
	cache *cachedSpec
}{
	"iso2003": {VariantCMF: {iso2003JSON, new(cachedSpec)}},
	"iso87": {
		VariantASCII:         {iso87JSON, new(cachedSpec)},
		VariantISO87ABBitmap: {iso87aBBitmapJSON, new(cachedSpec)},
		VariantISO87A:        {iso87aJSON, new(cachedSpec)},
		VariantISO87B:        {iso87bJSON, new(cachedSpec)},
	},
}

// DefaultVariant is the variant of profile used when a link names none.
func DefaultVariant(profile string) string {
	if profile == "iso2003" {
		return VariantCMF
	}
	return VariantASCII
}

// Variants lists the encoding variants of profile.
func Variants(profile string) []string {
	if profile == "iso2003" {
		return []string{VariantCMF}
	}
	return []string{VariantASCII, VariantISO87ABBitmap, VariantISO87A, VariantISO87B}
}

// ISOSpecVariant returns the message spec of profile ("iso87" or
// "iso2003") in the named encoding variant ("" for the profile's
// default). Each spec is built once and shared; it is safe for concurrent
// use and callers must not modify it.
func ISOSpecVariant(profile, variant string) (*iso8583.MessageSpec, error) {
	vs, ok := variants[profile]
	if !ok {
		return nil, fmt.Errorf("iso spec: unknown profile %q", profile)
	}
	if variant == "" {
		variant = DefaultVariant(profile)
	}
	v, ok := vs[variant]
	if !ok {
		return nil, fmt.Errorf("iso spec: profile %s has no variant %q (want one of %v)", profile, variant, Variants(profile))
	}
	return v.cache.load(variant, v.data)
}

// ISO87 returns the message spec of the iso87 profile in its default
// variant (VariantASCII).
func ISO87() (*iso8583.MessageSpec, error) { return ISOSpecVariant("iso87", "") }

// ISO2003 returns the message spec of the iso2003 profile: jPOS's cmf.xml.
func ISO2003() (*iso8583.MessageSpec, error) { return ISOSpecVariant("iso2003", "") }

// ISOSpec returns the message spec of the named profile ("iso87" or
// "iso2003") in its default variant.
func ISOSpec(profile string) (*iso8583.MessageSpec, error) {
	return ISOSpecVariant(profile, "")
}

// fieldSpec is a shorthand for the spec of field n, nil when undefined.
func fieldSpec(spec *iso8583.MessageSpec, n int) *field.Spec {
	f, ok := spec.Fields[n]
	if !ok {
		return nil
	}
	return f.Spec()
}
