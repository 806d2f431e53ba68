package cli

import (
	"errors"
	"fmt"
	"net/url"
	"strings"

	"github.com/spf13/cobra"

	"github.com/ferry-dev/ferry/imagemod"
	"github.com/ferry-dev/ferry/internal/redact"
	"github.com/ferry-dev/ferry/platform"
	"github.com/ferry-dev/ferry/progress"
	"github.com/ferry-dev/ferry/store"
)

// layerFlag is --layer or --foreign-url: both append to one list, so the
// layers keep the order they were given in.
type layerFlag struct {
	list *[]imagemod.Layer
	url  bool
	// secret receives the error for a URL with a user part, returned by
	// the command rather than Set: pflag would quote the argument,
	// password included, in its error.
	secret *error
}

func (f layerFlag) String() string { return "" }

func (f layerFlag) Type() string {
	if f.url {
		return "URL"
	}
	return "PATH"
}

func (f layerFlag) Set(s string) error {
	if !f.url {
		*f.list = append(*f.list, imagemod.Layer{Path: s})
		return nil
	}
	u, err := url.Parse(s)
	if err == nil && u.User != nil {
		// imagemod refuses it too (foreign.CheckPublishable); refused here
		// first so that it is a usage error and never fetched. Checked
		// before the scheme: an error from Set would show the password.
		if *f.secret == nil {
			*f.secret = usageErr(fmt.Errorf("--foreign-url %s has a user part: a URL written into a manifest must not carry credentials, which everyone who pulls the image would read (ferry refuses rather than strip them)", u.Redacted()))
		}
		return nil
	}
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		if shown := redact.URL(s); shown != s {
			// A user part url.Parse could not place, which may hold a
			// password: pflag would quote s, so the command reports it.
			if *f.secret == nil {
				*f.secret = usageErr(fmt.Errorf("--foreign-url %q is not an http(s) URL", shown))
			}
			return nil
		}
		return fmt.Errorf("%q is not an http(s) URL", s)
	}
	*f.list = append(*f.list, imagemod.Layer{URL: s})
	return nil
}

// parseKV parses repeated k=v flag values.
func parseKV(flag string, vals []string) (map[string]string, error) {
	out := map[string]string{}
	for _, s := range vals {
		k, v, ok := strings.Cut(s, "=")
		if !ok || k == "" {
			return nil, usageErr(fmt.Errorf("--%s %q: want KEY=VALUE", flag, s))
		}
		out[k] = v
	}
	return out, nil
}

func newAppendCmd(g *globals) *cobra.Command {
	var f copyFlags
	var layers []imagemod.Layer
	var base, target string
	var labels, annotations []string
	var secretURL error
	cmd := &cobra.Command{
		Use:   "append [--base REF|scratch] (--layer PATH | --foreign-url URL)... -t TARGET",
		Short: "Add layers (local, or foreign at a URL) on top of an image",
		Long: `Write to TARGET the base image with layers added on top, in the order given.

--layer takes a tar, a tar.gz or a directory; a directory is tarred
deterministically (sorted, fixed mtime, owner 0:0), so the same tree gives
the same digest. For a Windows image the tree holds Files/ (and Hives/).

--foreign-url reads the URL once, under the foreign-URL policy
(--foreign-allow), to learn the layer's digest, size and diff_id, and
lists it as a foreign layer with that URL: its bytes are never uploaded.

The base's own layers are mounted or copied, its foreign layers following
--foreign. On scratch, --platform os/arch[:os.version] is required; on a
base index it chooses the entry. The last line on stdout is
TARGET@sha256:<digest>.`,
		Example: `  ferry append --base myreg/servercore:ltsc2022 --layer ./app -t myreg/app:1.0
  ferry append --platform windows/amd64:10.0.20348.2461 --foreign-url https://example.com/base.tar.gz -t myreg/base:ltsc2022`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if secretURL != nil {
				return secretURL
			}
			if target == "" {
				return usageErr(errors.New("append needs -t TARGET"))
			}
			return g.runAppend(cmd, base, target, layers, labels, annotations, &f)
		},
	}
	f.register(cmd, "")
	fl := cmd.Flags()
	fl.Lookup("platform").Usage = "the platform: which entry of a base index to build on; on scratch, os/arch[:os.version] (required)"
	fl.StringVar(&base, "base", "scratch", "the image to build on, or scratch")
	fl.Var(layerFlag{list: &layers, secret: &secretURL}, "layer", "a tar, tar.gz or directory to add as a layer (repeatable)")
	fl.Var(layerFlag{list: &layers, url: true, secret: &secretURL}, "foreign-url", "a gzip'd tar at a URL to add as a foreign layer (repeatable)")
	fl.StringVarP(&target, "target", "t", "", "where to write the result (required)")
	fl.StringArrayVar(&labels, "label", nil, "KEY=VALUE config label (repeatable)")
	fl.StringArrayVar(&annotations, "annotation", nil, "KEY=VALUE manifest annotation (repeatable)")
	return cmd
}

func (g *globals) runAppend(cmd *cobra.Command, baseArg, targetArg string, layers []imagemod.Layer, labelArgs, annArgs []string, f *copyFlags) error {
	ctx := cmd.Context()
	dstLoc, err := g.parseLocation(targetArg)
	if err != nil {
		return err
	}
	var opts []imagemod.Option
	switch len(f.platforms) {
	case 0:
	case 1:
		spec, err := platform.ParseSpec(f.platforms[0])
		if err != nil {
			return usageErr(err)
		}
		opts = append(opts, imagemod.WithPlatform(spec))
	default:
		return usageErr(errors.New("append builds one image: give --platform once"))
	}
	f.platforms = nil // not a selection of what to copy
	labels, err := parseKV("label", labelArgs)
	if err != nil {
		return err
	}
	ann, err := parseKV("annotation", annArgs)
	if err != nil {
		return err
	}
	opts = append(opts, imagemod.WithLabels(labels), imagemod.WithAnnotations(ann))
	if err := imagemod.CheckAppend(baseArg == "scratch", layers, opts...); err != nil {
		return usageErr(err)
	}
	mode, err := progress.ParseMode(g.progress)
	if err != nil {
		return usageErr(err)
	}
	var base store.Source
	if baseArg != "scratch" {
		baseLoc, err := g.parseLocation(baseArg)
		if err != nil {
			return err
		}
		if base, err = g.open.Source(ctx, baseLoc); err != nil {
			return err
		}
		defer base.Close()
		opts = append(opts, imagemod.WithBaseName(baseArg))
	}
	rep := progress.New(g.stderr, mode)
	blobs, err := g.blobsFor(f, dstLoc, rep)
	if err != nil {
		rep.Close()
		return err
	}
	opts = append(opts, imagemod.WithBlobs(blobs))
	dst, err := g.open.Target(ctx, dstLoc, base)
	if err != nil {
		rep.Close()
		return err
	}
	res, err := imagemod.Append(ctx, base, dst, layers, opts...)
	rep.Close()
	if cerr := dst.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return g.report(f.json, targetArg, res.Written.Digest, res, func() {
		for i, l := range res.Layers {
			fmt.Fprintf(g.stderr, "layer %s (%d bytes, diff_id %s)\n", l.Digest, l.Size, res.DiffIDs[i])
		}
	})
}
