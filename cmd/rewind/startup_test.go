package main

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// TestNoPackageLevelCompile keeps the module's own packages in the binary
// from compiling regular expressions or parsing templates in package
// variables: package init runs at every start of every command, and a cold
// `rewind query` is mostly start-up (README, "Index and query"). A value
// only some commands need is built on first use (sync.OnceValue) or inside
// the function that needs it. Third-party packages are out of reach here
// (the AWS SDK's endpoint resolvers compile theirs at init; see
// TestNoSchemaPackages for what go.mod does about the SDK).
func TestNoPackageLevelCompile(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Fatalf("the go command is needed to list the binary's packages: %v", err)
	}
	out, err := exec.Command(goBin, "list", "-deps", "-f", "{{if .Module}}{{if .Module.Main}}{{.Dir}}\t{{join .GoFiles \"\\t\"}}{{end}}{{end}}", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	// What compiles or parses, by import path.
	costly := map[string]map[string]bool{
		"regexp":        {"Compile": true, "CompilePOSIX": true, "MustCompile": true, "MustCompilePOSIX": true, "MatchString": true, "Match": true},
		"text/template": {"New": true, "Must": true, "ParseFiles": true, "ParseGlob": true, "ParseFS": true},
		"html/template": {"New": true, "Must": true, "ParseFiles": true, "ParseGlob": true, "ParseFS": true},
	}
	var bad []string
	pkgs := 0
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		fields := strings.Split(line, "\t")
		if len(fields) < 2 {
			continue
		}
		pkgs++
		dir := fields[0]
		for _, name := range fields[1:] {
			path := filepath.Join(dir, name)
			fset := token.NewFileSet()
			f, err := parser.ParseFile(fset, path, nil, parser.SkipObjectResolution)
			if err != nil {
				t.Fatal(err)
			}
			// Local names of the costly packages in this file.
			local := map[string]string{}
			for _, imp := range f.Imports {
				p, _ := strconv.Unquote(imp.Path.Value)
				if costly[p] == nil {
					continue
				}
				n := filepath.Base(p)
				if imp.Name != nil {
					n = imp.Name.Name
				}
				local[n] = p
			}
			if len(local) == 0 {
				continue
			}
			for _, d := range f.Decls {
				g, ok := d.(*ast.GenDecl)
				if !ok || g.Tok != token.VAR {
					continue
				}
				for _, spec := range g.Specs {
					for _, v := range spec.(*ast.ValueSpec).Values {
						ast.Inspect(v, func(n ast.Node) bool {
							if _, ok := n.(*ast.FuncLit); ok {
								return false // runs when called, not at init
							}
							call, ok := n.(*ast.CallExpr)
							if !ok {
								return true
							}
							sel, ok := call.Fun.(*ast.SelectorExpr)
							if !ok {
								return true
							}
							if x, ok := sel.X.(*ast.Ident); ok && costly[local[x.Name]][sel.Sel.Name] {
								bad = append(bad, fset.Position(call.Pos()).String()+": "+x.Name+"."+sel.Sel.Name)
							}
							return true
						})
					}
				}
			}
		}
	}
	if pkgs < 10 {
		t.Fatalf("go list found %d of the module's packages in cmd/rewind; the listing is wrong", pkgs)
	}
	if len(bad) > 0 {
		t.Fatalf("%d package-level regexp/template build(s) run at every start of rewind, whatever the command:\n  %s\n"+
			"build them on first use (sync.OnceValue) or inside the function that needs them",
			len(bad), strings.Join(bad, "\n  "))
	}
}
