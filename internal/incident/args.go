package incident

import "strings"

// Flag returns the value of --name in args, as the flag package
// would parse it (the last one wins).
func Flag(args []string, name string) (string, bool) {
	v, ok := "", false
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			break
		}
		n, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || n != name {
			continue
		}
		if !hasVal && i+1 < len(args) {
			i++
			val = args[i]
		}
		v, ok = val, true
	}
	return v, ok
}

// BoolFlag reports whether the bool flag --name is set true in args.
func BoolFlag(args []string, name string) bool {
	for _, a := range args {
		if a == "--" {
			break
		}
		n, val, hasVal := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if strings.HasPrefix(a, "-") && n == name {
			return !hasVal || val == "true" || val == "1"
		}
	}
	return false
}
