package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// critest is the harness the tests report for.
var critest = harness{suite: "critest", script: "test/critest/run.sh"}

func TestCompare(t *testing.T) {
	specs := []spec{
		{Name: "a passes", State: "passed"},
		{Name: "b fails", State: "failed", Message: "boom"},
		{Name: "c skipped", State: "skipped"},
		{Name: "d times out", State: "timedout"},
		{Name: "e panics", State: "panicked"},
	}
	tests := []struct {
		name           string
		expected       []string
		wantUnexpected []string
		wantFixed      []string
	}{
		{"list matches", []string{"b fails", "d times out", "e panics"}, nil, nil},
		{"a failure outside the list", []string{"b fails", "e panics"}, []string{"d times out"}, nil},
		{"a listed spec passes", []string{"a passes", "b fails", "d times out", "e panics"}, nil, []string{"a passes (passed)"}},
		{"a listed spec is skipped", []string{"b fails", "c skipped", "d times out", "e panics"}, nil, []string{"c skipped (skipped)"}},
		{"a listed spec is gone", []string{"b fails", "d times out", "e panics", "z gone"}, nil, []string{"z gone (not in this critest run)"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			exp := map[string]bool{}
			for _, e := range tt.expected {
				exp[e] = true
			}
			v := critest.compare(specs, exp)
			if v.passed != 1 || v.failed != 3 || v.skipped != 1 {
				t.Errorf("counts %d/%d/%d, want 1/3/1", v.passed, v.failed, v.skipped)
			}
			var unexpected []string
			for _, s := range v.unexpected {
				unexpected = append(unexpected, s.Name)
			}
			if strings.Join(unexpected, "|") != strings.Join(tt.wantUnexpected, "|") {
				t.Errorf("unexpected %v, want %v", unexpected, tt.wantUnexpected)
			}
			if strings.Join(v.fixed, "|") != strings.Join(tt.wantFixed, "|") {
				t.Errorf("fixed %v, want %v", v.fixed, tt.wantFixed)
			}
		})
	}
}

const sampleReport = `[{"SpecReports":[
 {"LeafNodeType":"BeforeSuite","State":"passed"},
 {"ContainerHierarchyTexts":["[k8s.io] Runtime info","runtime should"],"LeafNodeType":"It","LeafNodeText":"return status","State":"passed"},
 {"ContainerHierarchyTexts":["[k8s.io] Image Manager"],"LeafNodeType":"It","LeafNodeText":"pull","State":"failed","Failure":{"Message":"Unimplemented\nmore"}}
]}]`

func TestRunPrintsCountsLastAndUpdates(t *testing.T) {
	dir := t.TempDir()
	report := filepath.Join(dir, "r.json")
	list := filepath.Join(dir, "expected")
	os.WriteFile(report, []byte(sampleReport), 0o644)

	var out bytes.Buffer
	ok, err := critest.run(report, list, false, &out)
	if err != nil || ok {
		t.Fatalf("with an empty list the failure must be unexpected: ok=%v err=%v", ok, err)
	}
	if !strings.Contains(out.String(), "FAILED (not expected): [k8s.io] Image Manager pull\n    Unimplemented\n") {
		t.Errorf("output lacks the failing spec:\n%s", out.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if last := lines[len(lines)-1]; last != "critest: 1 passed, 1 failed, 0 skipped" {
		t.Errorf("last line %q", last)
	}

	if ok, err = critest.run(report, list, true, &out); err != nil || !ok {
		t.Fatalf("update: %v", err)
	}
	out.Reset()
	if ok, err = critest.run(report, list, false, &out); err != nil || !ok {
		t.Fatalf("after update the list must match: ok=%v err=%v\n%s", ok, err, out.String())
	}
}

func TestEmptyReportIsAnError(t *testing.T) {
	p := filepath.Join(t.TempDir(), "r.json")
	os.WriteFile(p, []byte(`[{"SpecReports":[]}]`), 0o644)
	if _, err := critest.run(p, "", false, &bytes.Buffer{}); err == nil {
		t.Fatal("a report without specs was accepted")
	}
}

func TestSkipsNeedAReasonThatHolds(t *testing.T) {
	dir := t.TempDir()
	report := filepath.Join(dir, "r.json")
	os.WriteFile(report, []byte(`[{"SpecReports":[
 {"ContainerHierarchyTexts":["[k8s.io] AppArmor"],"LeafNodeType":"It","LeafNodeText":"works","State":"skipped","NumAttempts":1,"Failure":{"Message":"no AppArmor here"}},
 {"ContainerHierarchyTexts":["[k8s.io] NRI"],"LeafNodeType":"It","LeafNodeText":"syncs","State":"skipped","NumAttempts":1},
 {"ContainerHierarchyTexts":["[k8s.io] Benchmark"],"LeafNodeType":"It","LeafNodeText":"outside the focus","State":"skipped"},
 {"ContainerHierarchyTexts":["[k8s.io] Image"],"LeafNodeType":"It","LeafNodeText":"digest","State":"failed"}
]}]`), 0o644)
	present := filepath.Join(dir, "present")
	os.WriteFile(present, nil, 0o644)
	failures := filepath.Join(dir, "expected")
	os.WriteFile(failures, []byte("[k8s.io] Image digest || bytes built upstream || missing:repo@sha256:abc\n"), 0o644)
	inRegistry := func(found bool) func(string) (bool, error) {
		return func(ref string) (bool, error) {
			if ref != "repo@sha256:abc" {
				t.Errorf("probed %q", ref)
			}
			return found, nil
		}
	}
	tests := []struct {
		name, skips string
		found, ok   bool
		want        string
	}{
		{"every skip explained", "[k8s.io] AppArmor || no AppArmor || absent:" + filepath.Join(dir, "nothing") + "\n[k8s.io] NRI || not yet || gap\n", false, true, "1 skipped for work crid has not done yet"},
		{"a skip unexplained", "[k8s.io] AppArmor || no AppArmor || absent:/nonexistent\n", false, false, "SKIPPED (no known reason"},
		{"the machine gained the feature", "[k8s.io] AppArmor || no AppArmor || absent:" + present + "\n[k8s.io] NRI || not yet || gap\n", false, false, "REASON NO LONGER HOLDS"},
		{"the digest is served now", "[k8s.io] AppArmor || x || gap\n[k8s.io] NRI || y || gap\n", true, false, "is there: the spec can run now"},
		{"a rule without a reason", "[k8s.io] AppArmor\n[k8s.io] NRI || y || gap\n", false, false, "no reason given"},
		{"a command shows the reason", "[k8s.io] AppArmor || x || fails:exit 3\n[k8s.io] NRI || y || gap\n", false, true, "1 skipped for work"},
		{"the command succeeds now", "[k8s.io] AppArmor || x || fails:true\n[k8s.io] NRI || y || gap\n", false, false, "`true` succeeds: the spec can pass now"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			skips := filepath.Join(t.TempDir(), "skips")
			os.WriteFile(skips, []byte(tt.skips), 0o644)
			var out bytes.Buffer
			ok, err := critest.checkSkips(report, skips, failures, inRegistry(tt.found), &out)
			if err != nil || ok != tt.ok || !strings.Contains(out.String(), tt.want) {
				t.Errorf("ok=%v err=%v, want ok=%v and %q in:\n%s", ok, err, tt.ok, tt.want, out.String())
			}
		})
	}
}

// A spec the run's filters left out is neither a skip to explain nor a
// count of the summary; a skip by the spec itself is matched by its
// message too.
func TestFilteredSpecsAreNotSkips(t *testing.T) {
	dir := t.TempDir()
	report := filepath.Join(dir, "r.json")
	os.WriteFile(report, []byte(`[{"SpecReports":[
 {"ContainerHierarchyTexts":["[sig-node] Pods"],"LeafNodeType":"It","LeafNodeText":"run","State":"passed","NumAttempts":1},
 {"ContainerHierarchyTexts":["[sig-node] Swap"],"LeafNodeType":"It","LeafNodeText":"swaps","State":"skipped","NumAttempts":1,"Failure":{"Message":"Skipped: swap is off\nat swap_test.go:12"}},
 {"ContainerHierarchyTexts":["[sig-node] Serial"],"LeafNodeType":"It","LeafNodeText":"is not in the focus","State":"skipped"}
]}]`), 0o644)
	skips := filepath.Join(dir, "skips")
	os.WriteFile(skips, []byte("swap is off || the node has no swap || gap\n"), 0o644)
	nodeE2E := harness{suite: "node-e2e", script: "test/e2e/node/run.sh"}
	var out bytes.Buffer
	if ok, err := nodeE2E.checkSkips(report, skips, "", nil, &out); err != nil || !ok {
		t.Fatalf("ok=%v err=%v\n%s", ok, err, out.String())
	}
	out.Reset()
	if ok, err := nodeE2E.run(report, filepath.Join(dir, "expected"), false, &out); err != nil || !ok {
		t.Fatalf("ok=%v err=%v\n%s", ok, err, out.String())
	}
	for _, want := range []string{"node-e2e: 1 specs outside this run's focus, not counted\n", "node-e2e: 1 passed, 0 failed, 1 skipped\n"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q:\n%s", want, out.String())
		}
	}
}
