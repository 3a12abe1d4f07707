// Command report reads the JSON report of a ginkgo suite's run (its
// --json-report: critest's, or the node e2e suite's), compares the failures
// with the checked-in list of specs expected to fail, and prints the counts
// as the last line, named for the suite (-suite):
//
//	critest: N passed, N failed, N skipped
//	node-e2e: N passed, N failed, N skipped
//
// Specs the run's focus and skip filters left out (ginkgo reports them as
// skipped, never attempted) are counted apart, not as skips.
//
// It exits 1 when a spec outside the list failed, or when a listed spec did
// not fail: the list only ever shrinks, and it always says what is broken.
// With -update it rewrites the list from the run instead.
//
// Each line of the list, and of the skip list (specs the suite skips, by a
// part of their name or of the skip's message), may say why beside the name, and how to check that
// the reason still holds:
//
//	name || reason || check
//
// A check is absent:PATH (the machine lacks what the spec needs: the path
// must not exist), missing:REPO@DIGEST (bytes this machine cannot have:
// the loopback test registry must not hold that manifest), fails:COMMAND
// (a shell command that shows the reason, say a kernel feature or an
// image's behaviour, must exit non-zero), probed (the suite asked the
// runtime and skipped on its answer: the rule matches that answer in the
// skip's message, which is the check), gap (crid lacks it: to be done,
// counted apart) or mode:NAME (the spec runs in another mode of the
// harness, as critest's benchmarks do). A skipped spec no skip rule names,
// or a rule whose check fails, fails the run.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"sort"
	"strings"
	"time"
)

func main() {
	reportPath := flag.String("json", "", "the suite's --ginkgo.json-report file")
	suite := flag.String("suite", "critest", "the suite's name, which starts each summary line")
	script := flag.String("script", "test/critest/run.sh", "the harness that runs the suite, named in the list's header")
	listPath := flag.String("expected", "", "file of spec names expected to fail, one a line; # starts a comment")
	skipsPath := flag.String("skips", "", "file of the reasons the suite may skip specs for (by a part of the name or message)")
	registry := flag.String("registry", "127.0.0.1:5000", "the loopback registry that serves the test images, for missing: checks")
	update := flag.Bool("update", false, "rewrite the expected-failure list from this run")
	flag.Parse()
	h := harness{suite: *suite, script: *script}
	skipsOK := true
	if *skipsPath != "" && !*update {
		var err error
		if skipsOK, err = h.checkSkips(*reportPath, *skipsPath, *listPath, registryProbe(*registry), os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, "report:", err)
			os.Exit(2)
		}
	}
	ok, err := h.run(*reportPath, *listPath, *update, os.Stdout)
	ok = ok && skipsOK
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

// harness names the suite and the script that runs it, for what the
// report prints and writes.
type harness struct{ suite, script string }

// spec is one leaf of the run.
type spec struct {
	Name    string
	State   string // passed, failed, skipped, pending, panicked, interrupted, timedout, aborted
	Message string // first line of the failure, if any
}

type ginkgoReport struct {
	SpecReports []struct {
		ContainerHierarchyTexts []string
		LeafNodeType            string
		LeafNodeText            string
		State                   string
		NumAttempts             int
		Failure                 struct{ Message string }
	}
}

// readReport reads the specs of a run, and how many its filters left out.
func (h harness) readReport(path string) (specs []spec, filtered int, err error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, err
	}
	var reports []ginkgoReport
	if err := json.Unmarshal(data, &reports); err != nil {
		return nil, 0, fmt.Errorf("parse %s: %w", path, err)
	}
	for _, r := range reports {
		for _, s := range r.SpecReports {
			if s.LeafNodeType != "It" {
				continue // suite set-up nodes are not specs
			}
			if s.State == "skipped" && s.NumAttempts == 0 && s.Failure.Message == "" {
				filtered++ // never run: outside the run's focus
				continue
			}
			name := strings.Join(append(append([]string(nil), s.ContainerHierarchyTexts...), s.LeafNodeText), " ")
			msg := firstUsefulLine(s.Failure.Message)
			specs = append(specs, spec{Name: name, State: s.State, Message: msg})
		}
	}
	if len(specs) == 0 {
		return nil, filtered, fmt.Errorf("the report holds no specs that ran: %s did not run", h.suite)
	}
	return specs, filtered, nil
}

// firstUsefulLine is the line of a gomega failure that says what went
// wrong, skipping its "Unexpected error:" preamble and Go type dumps.
func firstUsefulLine(msg string) string {
	for _, line := range strings.Split(msg, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line == "Unexpected error:" || strings.HasPrefix(line, "<") {
			continue
		}
		if len(line) > 300 {
			line = line[:300] + "..."
		}
		return line
	}
	return ""
}

// rule is a line of a list: a spec's name (or part of it), why, and how
// to check the why.
type rule struct{ name, reason, check string }

func readRules(path string) ([]rule, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var rules []rule
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		parts := strings.Split(line, "||")
		for len(parts) < 3 {
			parts = append(parts, "")
		}
		rules = append(rules, rule{strings.TrimSpace(parts[0]), strings.TrimSpace(parts[1]), strings.TrimSpace(parts[2])})
	}
	return rules, sc.Err()
}

func readList(path string) (map[string]bool, error) {
	rules, err := readRules(path)
	if err != nil {
		return nil, err
	}
	list := map[string]bool{}
	for _, r := range rules {
		list[r.name] = true
	}
	return list, nil
}

// holds checks a rule's reason on this machine; "" when it holds. probe
// says whether the test registry holds a repo@digest.
func holds(r rule, probe func(ref string) (found bool, err error)) string {
	kind, arg, _ := strings.Cut(r.check, ":")
	switch {
	case r.reason == "":
		return "no reason given"
	case kind == "absent":
		if _, err := os.Stat(arg); err == nil {
			return arg + " exists: the machine has what the spec needs now"
		}
	case kind == "missing":
		found, err := probe(arg)
		if err != nil {
			return "cannot check " + arg + ": " + err.Error()
		}
		if found {
			return arg + " is there: the spec can run now"
		}
	case kind == "fails":
		if err := exec.Command("sh", "-c", arg).Run(); err == nil {
			return "`" + arg + "` succeeds: the spec can pass now"
		}
	case kind == "gap", kind == "mode", kind == "probed":
	default:
		return fmt.Sprintf("check %q is not absent:PATH, missing:REPO@DIGEST, fails:COMMAND, probed, gap or mode:NAME", r.check)
	}
	return ""
}

// registryProbe says whether the loopback registry holds repo@digest.
func registryProbe(registry string) func(ref string) (bool, error) {
	return func(ref string) (bool, error) {
		repo, digest, ok := strings.Cut(ref, "@")
		if !ok {
			return false, fmt.Errorf("%q is not REPO@DIGEST", ref)
		}
		return headFinds("http://" + registry + "/v2/" + repo + "/manifests/" + digest)
	}
}

// headFinds says whether a loopback URL answers 200 to HEAD.
func headFinds(url string) (bool, error) {
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		return false, errors.New("only loopback URLs are checked")
	}
	req, err := http.NewRequest(http.MethodHead, url, nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Accept", "application/vnd.oci.image.index.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json")
	resp, err := (&http.Client{Timeout: 5 * time.Second}).Do(req)
	if err != nil {
		return false, err
	}
	resp.Body.Close()
	return resp.StatusCode == http.StatusOK, nil
}

// checkSkips holds every skipped spec to a skip rule and every rule (and
// expected failure) to its check. It prints the skips by reason.
func (h harness) checkSkips(reportPath, skipsPath, listPath string, probe func(string) (bool, error), out io.Writer) (bool, error) {
	specs, _, err := h.readReport(reportPath)
	if err != nil {
		return false, err
	}
	skips, err := readRules(skipsPath)
	if err != nil {
		return false, err
	}
	failures, err := readRules(listPath)
	if err != nil {
		return false, err
	}
	ok := true
	byReason := map[string]int{}
	var gaps int
	for _, s := range specs {
		if s.State != "skipped" {
			continue
		}
		var match *rule
		for i := range skips {
			if strings.Contains(s.Name, skips[i].name) || strings.Contains(s.Message, skips[i].name) {
				match = &skips[i]
				break
			}
		}
		if match == nil {
			fmt.Fprintf(out, "SKIPPED (no known reason; add one to %s or make it run): %s\n    %s\n", skipsPath, s.Name, s.Message)
			ok = false
			continue
		}
		byReason[match.reason]++
		if match.check == "gap" {
			gaps++
		}
	}
	for _, r := range append(append([]rule{}, skips...), failures...) {
		if why := holds(r, probe); why != "" {
			fmt.Fprintf(out, "REASON NO LONGER HOLDS for %q: %s\n", r.name, why)
			ok = false
		}
	}
	reasons := make([]string, 0, len(byReason))
	for r, n := range byReason {
		reasons = append(reasons, fmt.Sprintf("%d: %s", n, r))
	}
	sort.Strings(reasons)
	for _, r := range reasons {
		fmt.Fprintf(out, "%s: skipped %s\n", h.suite, r)
	}
	fmt.Fprintf(out, "%s: %d skipped for work crid has not done yet (gap)\n", h.suite, gaps)
	return ok, nil
}

// failed says whether a state counts as a failure.
func failed(state string) bool {
	switch state {
	case "passed", "skipped", "pending":
		return false
	}
	return true
}

// verdict compares the run with the list.
type verdict struct {
	passed, failed, skipped int
	unexpected              []spec   // failed, not listed
	fixed                   []string // listed, did not fail
}

func (h harness) compare(specs []spec, expected map[string]bool) verdict {
	var v verdict
	seen := map[string]bool{}
	for _, s := range specs {
		seen[s.Name] = true
		switch {
		case s.State == "passed":
			v.passed++
		case failed(s.State):
			v.failed++
		default:
			v.skipped++
		}
		if failed(s.State) && !expected[s.Name] {
			v.unexpected = append(v.unexpected, s)
		}
		if !failed(s.State) && expected[s.Name] {
			v.fixed = append(v.fixed, s.Name+" ("+s.State+")")
		}
	}
	for name := range expected {
		if !seen[name] {
			v.fixed = append(v.fixed, name+" (not in this "+h.suite+" run)")
		}
	}
	sort.Strings(v.fixed)
	return v
}

func (h harness) run(reportPath, listPath string, update bool, out io.Writer) (bool, error) {
	specs, filtered, err := h.readReport(reportPath)
	if err != nil {
		return false, err
	}
	if update {
		return true, h.writeList(listPath, specs)
	}
	expected, err := readList(listPath)
	if err != nil {
		return false, err
	}
	v := h.compare(specs, expected)
	for _, s := range v.unexpected {
		fmt.Fprintf(out, "FAILED (not expected): %s\n    %s\n", s.Name, s.Message)
	}
	for _, name := range v.fixed {
		fmt.Fprintf(out, "NOW PASSES (remove it from %s): %s\n", listPath, name)
	}
	if filtered > 0 {
		fmt.Fprintf(out, "%s: %d specs outside this run's focus, not counted\n", h.suite, filtered)
	}
	fmt.Fprintf(out, "%s: %d failures expected by %s, %d unexpected, %d listed specs did not fail\n",
		h.suite, len(expected), listPath, len(v.unexpected), len(v.fixed))
	fmt.Fprintf(out, "%s: %d passed, %d failed, %d skipped\n", h.suite, v.passed, v.failed, v.skipped)
	return len(v.unexpected) == 0 && len(v.fixed) == 0, nil
}

const listHeader = `# %s specs expected to fail with crid, one full spec name a line,
# with why beside it and how the harness checks the why:
#   name || reason || check   (check: absent:PATH, missing:REPO@DIGEST, fails:COMMAND, gap)
# %s fails when a spec outside this list fails, when a
# spec in it no longer fails, or when its check fails: remove a line as
# soon as its spec passes. Regenerate from a run with: run.sh -update
`

func (h harness) writeList(path string, specs []spec) error {
	old, err := readRules(path)
	if err != nil {
		return err
	}
	why := map[string]rule{}
	for _, r := range old {
		why[r.name] = r
	}
	var names []string
	for _, s := range specs {
		if failed(s.State) {
			name := s.Name
			if r, ok := why[name]; ok && r.reason != "" {
				name += " || " + r.reason
				if r.check != "" {
					name += " || " + r.check
				}
			}
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return os.WriteFile(path, []byte(fmt.Sprintf(listHeader, h.suite, h.script)+strings.Join(names, "\n")+"\n"), 0o644)
}
