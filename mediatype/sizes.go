package mediatype

import (
	"encoding/json"
	"errors"
	"fmt"
)

// ErrNegativeSize means a descriptor gives a negative size, which no blob
// has; matched with errors.Is.
var ErrNegativeSize = errors.New("descriptor has a negative size")

// descriptorSize is the part of a descriptor CheckSizes reads.
type descriptorSize struct {
	Digest string `json:"digest"`
	Size   int64  `json:"size"`
}

// checkSize returns an error wrapping ErrNegativeSize when size is
// negative, naming what (e.g. "layer 2") and the digest.
func checkSize(what, digest string, size int64) error {
	if size < 0 {
		return fmt.Errorf("%s %s: %w (%d)", what, digest, ErrNegativeSize, size)
	}
	return nil
}

// CheckSizes checks every descriptor of a manifest or index body (config,
// layers, manifests, blobs, subject) for a negative size, so that readers
// refuse one up front instead of passing it to a copy or a registry. It
// says nothing about bodies that are not JSON objects: Sniff and the
// parsers report those.
func CheckSizes(raw []byte) error {
	var m struct {
		Config    *descriptorSize  `json:"config"`
		Subject   *descriptorSize  `json:"subject"`
		Layers    []descriptorSize `json:"layers"`
		Manifests []descriptorSize `json:"manifests"`
		Blobs     []descriptorSize `json:"blobs"`
	}
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil
	}
	for _, one := range []struct {
		what string
		d    *descriptorSize
	}{{"config", m.Config}, {"subject", m.Subject}} {
		if one.d != nil {
			if err := checkSize(one.what, one.d.Digest, one.d.Size); err != nil {
				return err
			}
		}
	}
	for _, list := range []struct {
		what string
		ds   []descriptorSize
	}{{"layer", m.Layers}, {"manifest", m.Manifests}, {"blob", m.Blobs}} {
		for i, d := range list.ds {
			if err := checkSize(fmt.Sprintf("%s %d", list.what, i+1), d.Digest, d.Size); err != nil {
				return err
			}
		}
	}
	return nil
}
