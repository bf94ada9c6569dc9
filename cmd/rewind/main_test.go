package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestNoSchemaPackages keeps the AWS SDK's generated `schemas` packages of
// the big service models out of the binary: they build their schema values
// in package init, at every start of every command, whether or not the
// command calls the service (glue's alone took ~19 ms, all of them ~45 ms:
// most of a cold `rewind query`). go.mod holds those services at the last
// release without them. The credential chain's own services (sts, sso,
// ssooidc, signin) come with the SDK's config module and are small.
func TestNoSchemaPackages(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list the binary's packages: %v", err)
	}
	out, err := exec.Command(goBin, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	allowed := map[string]bool{"sts": true, "sso": true, "ssooidc": true, "signin": true}
	var bad []string
	for _, pkg := range strings.Fields(string(out)) {
		rest, ok := strings.CutPrefix(pkg, "github.com/aws/aws-sdk-go-v2/service/")
		if !ok {
			continue
		}
		service, tail, _ := strings.Cut(rest, "/")
		if tail == "schemas" && !allowed[service] {
			bad = append(bad, pkg)
		}
	}
	if len(bad) > 0 {
		t.Fatalf("cmd/rewind links %d schema package(s) whose init runs at every start: %s\n"+
			"hold the service module at its last release without them (see the comment in go.mod)",
			len(bad), strings.Join(bad, ", "))
	}
}
