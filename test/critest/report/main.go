// Command report reads the JSON report of a critest run (ginkgo's
// --json-report), compares the failures with the checked-in list of specs
// expected to fail, and prints the counts as the last line:
//
//	critest: N passed, N failed, N skipped
//
// It exits 1 when a spec outside the list failed, or when a listed spec did
// not fail: the list only ever shrinks, and it always says what is broken.
// With -update it rewrites the list from the run instead.
package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
)

func main() {
	reportPath := flag.String("json", "", "critest's --ginkgo.json-report file")
	listPath := flag.String("expected", "", "file of spec names expected to fail, one a line; # starts a comment")
	update := flag.Bool("update", false, "rewrite the expected-failure list from this run")
	flag.Parse()
	ok, err := run(*reportPath, *listPath, *update, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(2)
	}
	if !ok {
		os.Exit(1)
	}
}

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
		Failure                 struct{ Message string }
	}
}

func readReport(path string) ([]spec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var reports []ginkgoReport
	if err := json.Unmarshal(data, &reports); err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	var specs []spec
	for _, r := range reports {
		for _, s := range r.SpecReports {
			if s.LeafNodeType != "It" {
				continue // suite set-up nodes are not specs
			}
			name := strings.Join(append(append([]string(nil), s.ContainerHierarchyTexts...), s.LeafNodeText), " ")
			msg := firstUsefulLine(s.Failure.Message)
			specs = append(specs, spec{Name: name, State: s.State, Message: msg})
		}
	}
	if len(specs) == 0 {
		return nil, errors.New("the report holds no specs: critest did not run")
	}
	return specs, nil
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

func readList(path string) (map[string]bool, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return map[string]bool{}, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	list := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			list[line] = true
		}
	}
	return list, sc.Err()
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

func compare(specs []spec, expected map[string]bool) verdict {
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
			v.fixed = append(v.fixed, name+" (not in this critest)")
		}
	}
	sort.Strings(v.fixed)
	return v
}

func run(reportPath, listPath string, update bool, out io.Writer) (bool, error) {
	specs, err := readReport(reportPath)
	if err != nil {
		return false, err
	}
	if update {
		return true, writeList(listPath, specs)
	}
	expected, err := readList(listPath)
	if err != nil {
		return false, err
	}
	v := compare(specs, expected)
	for _, s := range v.unexpected {
		fmt.Fprintf(out, "FAILED (not expected): %s\n    %s\n", s.Name, s.Message)
	}
	for _, name := range v.fixed {
		fmt.Fprintf(out, "NOW PASSES (remove it from %s): %s\n", listPath, name)
	}
	fmt.Fprintf(out, "critest: %d failures expected by %s, %d unexpected, %d listed specs did not fail\n",
		len(expected), listPath, len(v.unexpected), len(v.fixed))
	fmt.Fprintf(out, "critest: %d passed, %d failed, %d skipped\n", v.passed, v.failed, v.skipped)
	return len(v.unexpected) == 0 && len(v.fixed) == 0, nil
}

const listHeader = `# critest specs expected to fail with crid, one full spec name a line.
# test/critest/run.sh fails when a spec outside this list fails, or when a
# spec in it no longer fails: remove a line as soon as its spec passes.
# Regenerate from a run with: test/critest/run.sh -update
`

func writeList(path string, specs []spec) error {
	var names []string
	for _, s := range specs {
		if failed(s.State) {
			names = append(names, s.Name)
		}
	}
	sort.Strings(names)
	return os.WriteFile(path, []byte(listHeader+strings.Join(names, "\n")+"\n"), 0o644)
}
