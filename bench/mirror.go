package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// The mirror scenario: pulls through ferry serve --proxy, cold (a fresh
// mirror) and warm (the same mirror again), beside the same pull straight
// from the upstream, from a plain ferry serve holding the image, and
// through the reference registry's own proxy mode (proxy.remoteurl). The
// ordinary image is pulled by crane into an OCI layout; the image whose
// base layer is foreign by ferry copy --foreign include (crane cannot
// follow plain-http loopback URLs), straight (the upstream, then the
// capped URL server) or through the mirror (which fetches the URL once).

// mirrorRow is one line of the mirror table: what was pulled how, and the
// row its time is compared with.
type mirrorRow struct {
	label, baseline string
}

var mirrorRows = []mirrorRow{
	{"crane ← upstream", ""},
	{"crane ← ferry serve", ""},
	{"crane ← ferry mirror, cold", "crane ← upstream"},
	{"crane ← ferry mirror, warm", "crane ← ferry serve"},
	{"crane ← registry proxy, cold", "crane ← upstream"},
	{"crane ← registry proxy, warm", "crane ← ferry serve"},
	{"ferry ← upstream + URL (foreign)", ""},
	{"ferry ← ferry mirror, cold (foreign)", "ferry ← upstream + URL (foreign)"},
	{"ferry ← ferry mirror, warm (foreign)", "ferry ← upstream + URL (foreign)"},
}

// mirrorScenario runs the mirror scenario c.runs times and returns its
// report section.
func mirrorScenario(c config, t *tools, ferryBin, src string, img *image) (string, error) {
	crane, ok := t.bin["crane"]
	if !ok {
		return "", fmt.Errorf("the mirror scenario pulls with crane: add it to -tools")
	}
	plain, err := startFerry(ferryBin, filepath.Join(c.work, "mirror-plain"))
	if err != nil {
		return "", err
	}
	defer plain.stop()
	if m := measure([]string{ferryBin, "copy", "--progress", "none", src + "/win/app:v1", plain.host + "/win/app:v1"}, t.env); m.err != nil {
		return "", m.err
	}
	res := map[string][]measurement{}
	layout := filepath.Join(c.work, "mirror-pull")
	// pull runs argv; through, when not nil, is the mirror it pulls
	// through, whose CPU time over the pull is counted beside the client's.
	pull := func(label string, through *proc, argv []string) {
		exec.Command("sync").Run()
		before := through.cpuSeconds()
		m := measure(argv, t.env)
		if through != nil {
			m.server = through.cpuSeconds() - before
		}
		if m.err == nil {
			if _, err := os.Stat(filepath.Join(layout, "blobs", "sha256", img.Base.Digest[len("sha256:"):])); err != nil {
				m.err = fmt.Errorf("%s: the layout lacks the base layer", label)
			}
		}
		os.RemoveAll(layout)
		if m.err != nil {
			fmt.Fprintf(os.Stderr, "mirror %s: %v\n", label, m.err)
		} else {
			fmt.Fprintf(os.Stderr, "mirror %-38s %6.2fs\n", label, m.seconds)
		}
		res[label] = append(res[label], m)
	}
	cranePull := func(label string, through *proc, ref string) {
		pull(label, through, []string{crane, "pull", "--insecure", "--format", "oci", ref, layout})
	}
	ferryPull := func(label string, through *proc, ref string, extra ...string) {
		argv := append([]string{ferryBin, "copy", "--progress", "none", "--foreign", "include"}, extra...)
		pull(label, through, append(argv, ref, "oci:"+layout+":v1"))
	}
	for r := 0; r < c.runs; r++ {
		cranePull("crane ← upstream", nil, src+"/win/app:v1")
		cranePull("crane ← ferry serve", nil, plain.host+"/win/app:v1")

		mirror, err := startMirror(ferryBin, filepath.Join(c.work, fmt.Sprintf("mirror-%d", r)), src)
		if err != nil {
			return "", err
		}
		cranePull("crane ← ferry mirror, cold", mirror, mirror.host+"/win/app:v1")
		cranePull("crane ← ferry mirror, warm", mirror, mirror.host+"/win/app:v1")
		ferryPull("ferry ← upstream + URL (foreign)", nil, src+"/win/foreign:v1", "--foreign-allow", `^http://127\.0\.0\.1:`, "--foreign-connections", "1")
		ferryPull("ferry ← ferry mirror, cold (foreign)", mirror, mirror.host+"/win/foreign:v1")
		ferryPull("ferry ← ferry mirror, warm (foreign)", mirror, mirror.host+"/win/foreign:v1")
		mirror.stop()

		proxy, err := startReferenceProxy(t.bin["registry"], filepath.Join(c.work, fmt.Sprintf("regproxy-%d", r)), src)
		if err != nil {
			return "", err
		}
		cranePull("crane ← registry proxy, cold", proxy, proxy.host+"/win/app:v1")
		cranePull("crane ← registry proxy, warm", proxy, proxy.host+"/win/app:v1")
		proxy.stop()
	}
	var b strings.Builder
	fmt.Fprintf(&b, "### mirror\n\nPulls through ferry serve --proxy (a fresh mirror per run: cold, then warm) and through the reference registry %s with proxy.remoteurl, beside the same pull from the upstream and from a plain ferry serve. The foreign rows pull the image whose base layer is at the capped URL, with ferry copy --foreign include.\n\n", registryVersion)
	b.WriteString("| pull | median s | MB/s | time / baseline's | baseline | client CPU s | mirror CPU s |\n| --- | ---: | ---: | ---: | --- | ---: | ---: |\n")
	for _, row := range mirrorRows {
		sec, _, ok := median(res[row.label])
		if !ok {
			fmt.Fprintf(&b, "| %s | — | — | — | failed | — | — |\n", row.label)
			continue
		}
		ratio := "—"
		if bsec, _, bok := median(res[row.baseline]); bok && row.baseline != "" {
			ratio = fmt.Sprintf("%.2f", sec/bsec)
		}
		client, server := medianCPU(res[row.label])
		mirrorCPU := "—"
		if strings.Contains(row.label, "mirror") || strings.Contains(row.label, "proxy") {
			mirrorCPU = fmt.Sprintf("%.2f", server)
		}
		fmt.Fprintf(&b, "| %s | %.2f | %.0f | %s | %s | %.2f | %s |\n", row.label, sec, float64(img.Bytes())/1e6/sec, ratio, row.baseline, client, mirrorCPU)
	}
	b.WriteString("\nCPU times are medians per pull: the client's (crane, or ferry copy) and the mirror process's (ferry serve --proxy, or the reference registry in proxy mode), both on this machine's cores with the upstream's. A cold pull through a mirror on the same machine cannot take less wall time than the CPU all three need, divided by the cores.\n\n")
	return b.String(), nil
}

// startMirror starts ferry serve --proxy in front of upstream.
func startMirror(bin, root, upstream string) (*proc, error) {
	return startFerry(bin, root, "--proxy", "http://"+upstream, "--foreign-allow", `^http://127\.0\.0\.1:`)
}

// startReferenceProxy starts distribution's reference registry as a
// pull-through cache of upstream (its proxy mode), on a fresh root.
func startReferenceProxy(bin, root, upstream string) (*proc, error) {
	return startReference(bin, root, fmt.Sprintf("proxy:\n  remoteurl: http://%s\n  ttl: 0s\n", upstream))
}

// medianCPU returns the median client and server CPU seconds of ms.
func medianCPU(ms []measurement) (client, server float64) {
	var cs, ss []float64
	for _, m := range ms {
		if m.err == nil {
			cs, ss = append(cs, m.cpu), append(ss, m.server)
		}
	}
	return middle(cs), middle(ss)
}
