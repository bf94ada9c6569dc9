package fakeiam

import (
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"
	"iter"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The policy evaluation SimulatePrincipalPolicy answers with models this
// subset of the IAM policy language, for identity-based policies only:
//
//   - Effect Allow and Deny; an explicit Deny wins, then an Allow, else
//     implicitDeny (no permissions boundary, SCP, session or resource
//     policy).
//   - Action (not NotAction): "*" and "?" wildcards, case-insensitive.
//   - Resource (not NotResource): "*" and "?" wildcards, case-sensitive.
//   - Condition operators StringEquals, StringLike, and their
//     ForAnyValue: and ForAllValues: forms, on the context keys the
//     request gives (ContextEntries). StringLike's "*" and "?" wildcards
//     and the literal escapes ${*}, ${?} and ${$} are modelled; other
//     policy variables (${aws:username}) are not substituted and match
//     their own text. A missing key fails every operator but the
//     ForAllValues: forms, which hold (as the IAM User Guide documents).
//     Any other operator fails to match (so an unmodelled Allow grants
//     nothing and an unmodelled Deny denies nothing: tests must stay
//     within the subset).
//
// A role's policies are its attached managed policies (their default
// version) and its inline policies, as they were PropagationDelay ago.

// snapshot is every role's policy documents at one time.
type snapshot struct {
	at   time.Time
	docs map[string][]string // by role name
}

// snapshotLocked records the roles' documents now.
func (s *Server) snapshotLocked() {
	snap := snapshot{at: time.Now(), docs: map[string][]string{}}
	for name, r := range s.roles {
		var docs []string
		for _, a := range r.attached {
			if p, ok := s.policies[a]; ok {
				if v := p.version(p.defaultID); v != nil {
					docs = append(docs, v.document)
				}
			}
		}
		for _, n := range slices.Sorted(mapsKeys(r.inline)) {
			docs = append(docs, r.inline[n])
		}
		snap.docs[name] = docs
	}
	s.history = append(s.history, snap)
	// Keep what a lagging reader may still need.
	cut := time.Now().Add(-s.lag - time.Minute)
	for len(s.history) > 1 && s.history[1].at.Before(cut) {
		s.history = s.history[1:]
	}
}

func mapsKeys(m map[string]string) iter.Seq[string] { return maps.Keys(m) }

// docsSeenLocked returns a role's documents as evaluation sees them: the
// last snapshot at least lag old.
func (s *Server) docsSeenLocked(role string) []string {
	limit := time.Now().Add(-s.lag)
	var seen []string
	for _, snap := range s.history {
		if snap.at.After(limit) {
			break
		}
		seen = snap.docs[role]
	}
	return seen
}

// SetPropagationDelay makes SimulatePrincipalPolicy see policy changes
// only d after they are made, as a slow IAM would.
func (s *Server) SetPropagationDelay(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lag = d
}

// SetManagedPolicyQuota sets how many managed policies a role may have
// attached (IAM's default quota is 10); AttachRolePolicy beyond it
// answers LimitExceeded.
func (s *Server) SetManagedPolicyQuota(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.quota = n
}

// InlinePolicy returns a role's inline policy document.
func (s *Server) InlinePolicy(role, name string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.roles[role]
	if !ok {
		return "", false
	}
	d, ok := r.inline[name]
	return d, ok
}

// evalDoc is a policy document as the evaluator reads it.
type evalDoc struct {
	Statement oneOrMany[evalStatement]
}

type evalStatement struct {
	Effect    string
	Action    oneOrMany[string]
	Resource  oneOrMany[string]
	Condition map[string]map[string]oneOrMany[string]
}

// oneOrMany reads IAM's "a value or a list of values".
type oneOrMany[T any] []T

func (o *oneOrMany[T]) UnmarshalJSON(b []byte) error {
	var one T
	if err := json.Unmarshal(b, &one); err == nil {
		*o = []T{one}
		return nil
	}
	var many []T
	if err := json.Unmarshal(b, &many); err != nil {
		return err
	}
	*o = many
	return nil
}

// Decision is an evaluation result, as SimulatePrincipalPolicy names it.
const (
	Allowed      = "allowed"
	ExplicitDeny = "explicitDeny"
	ImplicitDeny = "implicitDeny"
)

// Evaluate decides action on resource under docs with the request context
// ctx (key name, case-insensitive, to values).
func Evaluate(docs []string, action, resource string, ctx map[string][]string) string {
	allowed := false
	for _, d := range docs {
		var doc evalDoc
		if json.Unmarshal([]byte(d), &doc) != nil {
			continue
		}
		for _, st := range doc.Statement {
			if !matchAny(st.Action, action, true) || !matchAny(st.Resource, resource, false) || !conditionsHold(st.Condition, ctx) {
				continue
			}
			switch st.Effect {
			case "Deny":
				return ExplicitDeny
			case "Allow":
				allowed = true
			}
		}
	}
	if allowed {
		return Allowed
	}
	return ImplicitDeny
}

func matchAny(patterns []string, s string, fold bool) bool {
	for _, p := range patterns {
		if likeRegexp(p, fold, false).MatchString(s) {
			return true
		}
	}
	return false
}

// likeRegexp turns an IAM wildcard pattern into a regexp; with escapes,
// ${*}, ${?} and ${$} stand for the literal characters.
func likeRegexp(p string, fold, escapes bool) *regexp.Regexp {
	var b strings.Builder
	if fold {
		b.WriteString("(?i)")
	}
	b.WriteString("^")
	for i := 0; i < len(p); {
		if escapes {
			if lit, ok := strings.CutPrefix(p[i:], "${"); ok && len(lit) >= 2 && lit[1] == '}' && strings.ContainsRune("*?$", rune(lit[0])) {
				b.WriteString(regexp.QuoteMeta(lit[:1]))
				i += 4
				continue
			}
		}
		switch p[i] {
		case '*':
			b.WriteString("(?s:.*)")
		case '?':
			b.WriteString("(?s:.)")
		default:
			b.WriteString(regexp.QuoteMeta(p[i : i+1]))
		}
		i++
	}
	b.WriteString("$")
	return regexp.MustCompile(b.String())
}

func conditionsHold(cond map[string]map[string]oneOrMany[string], ctx map[string][]string) bool {
	for op, keys := range cond {
		for key, want := range keys {
			have, present := ctx[strings.ToLower(key)]
			if !conditionHolds(op, want, have, present) {
				return false
			}
		}
	}
	return true
}

func conditionHolds(op string, want, have []string, present bool) bool {
	set, base, _ := strings.Cut(op, ":")
	if base == "" {
		set, base = "", op
	}
	var match func(pattern, v string) bool
	switch base {
	case "StringEquals":
		match = func(p, v string) bool { return p == v }
	case "StringLike":
		match = func(p, v string) bool { return likeRegexp(p, false, true).MatchString(v) }
	default:
		return false
	}
	one := func(v string) bool {
		for _, p := range want {
			if match(p, v) {
				return true
			}
		}
		return false
	}
	switch set {
	case "ForAllValues":
		for _, v := range have {
			if !one(v) {
				return false
			}
		}
		return true
	case "ForAnyValue", "":
		if !present {
			return false
		}
		for _, v := range have {
			if one(v) {
				return true
			}
		}
		return false
	}
	return false
}

// simulate answers SimulatePrincipalPolicy for a role.
func (s *Server) simulate(f map[string][]string) (string, *apiError) {
	get := func(k string) string {
		if v := f[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	list := func(prefix string) []string {
		var out []string
		for i := 1; ; i++ {
			v, ok := f[prefix+".member."+strconv.Itoa(i)]
			if !ok {
				return out
			}
			out = append(out, v[0])
		}
	}
	src := get("PolicySourceArn")
	_, name, ok := strings.Cut(src, ":role/")
	if !ok {
		return "", invalidInput("PolicySourceArn %s: the fake simulates roles only", src)
	}
	name = name[strings.LastIndexByte(name, '/')+1:]
	if _, ok := s.roles[name]; !ok {
		return "", noSuchEntity("The role with name %s cannot be found.", name)
	}
	ctx := map[string][]string{}
	for i := 1; ; i++ {
		p := "ContextEntries.member." + strconv.Itoa(i)
		key, ok := f[p+".ContextKeyName"]
		if !ok {
			break
		}
		ctx[strings.ToLower(key[0])] = list(p + ".ContextKeyValues")
	}
	actions, resources := list("ActionNames"), list("ResourceArns")
	if len(actions) == 0 {
		return "", invalidInput("ActionNames is required")
	}
	if len(resources) == 0 {
		resources = []string{"*"}
	}
	docs := s.docsSeenLocked(name)
	var b strings.Builder
	b.WriteString("<IsTruncated>false</IsTruncated><EvaluationResults>")
	for _, a := range actions {
		for _, r := range resources {
			fmt.Fprintf(&b, "<member><EvalActionName>%s</EvalActionName><EvalResourceName>%s</EvalResourceName><EvalDecision>%s</EvalDecision><MatchedStatements/><MissingContextValues/></member>", esc(a), esc(r), Evaluate(docs, a, r, ctx))
		}
	}
	b.WriteString("</EvaluationResults>")
	return b.String(), nil
}

// Table is a DynamoDB table as DescribeTable describes it, for the freeze's
// tests: the fake answers DescribeTable (JSON protocol, X-Amz-Target
// DynamoDB_20120810.DescribeTable) for the tables added with AddTable.
type Table struct {
	Name             string
	PartitionKey     string
	PartitionKeyType string // S, N or B; default S
	SortKey          string
	// Regions are the global table's replica regions, the table's own
	// included, as DescribeTable lists them; none for a plain table.
	Regions []string
}

// AddTable makes DescribeTable know t.
func (s *Server) AddTable(t Table) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.PartitionKeyType == "" {
		t.PartitionKeyType = "S"
	}
	s.tables[t.Name] = t
}

// AddDAXCluster makes DAX DescribeClusters list a cluster.
func (s *Server) AddDAXCluster(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.daxClusters = append(s.daxClusters, name)
}

// SetDAXError makes DAX DescribeClusters fail with this error code (e.g.
// AccessDeniedException); "" to answer again.
func (s *Server) SetDAXError(code string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.daxErr = code
}

// serveJSON answers the JSON-protocol calls: DynamoDB DescribeTable and
// DAX DescribeClusters.
func (s *Server) serveJSON(w http.ResponseWriter, r *http.Request, target string) {
	body, _ := io.ReadAll(r.Body)
	s.mu.Lock()
	s.counts[target]++
	defer s.mu.Unlock()
	fail := func(status int, typ, msg string) {
		w.Header().Set("Content-Type", r.Header.Get("Content-Type"))
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"__type": typ, "message": msg}) //nolint:errcheck
	}
	answer := func(v any) {
		b, _ := json.Marshal(v)
		w.Header().Set("Content-Type", r.Header.Get("Content-Type"))
		// The DynamoDB client checks the body against this header.
		w.Header().Set("X-Amz-Crc32", strconv.FormatUint(uint64(crc32.ChecksumIEEE(b)), 10))
		w.Write(b) //nolint:errcheck
	}
	switch target {
	case "DynamoDB_20120810.DescribeTable":
		var in struct{ TableName string }
		json.Unmarshal(body, &in) //nolint:errcheck // a bad body finds no table
		t, ok := s.tables[in.TableName]
		if !ok {
			fail(http.StatusBadRequest, "com.amazonaws.dynamodb.v20120810#ResourceNotFoundException", "Requested resource not found: Table: "+in.TableName+" not found")
			return
		}
		keys := []map[string]string{{"AttributeName": t.PartitionKey, "KeyType": "HASH"}}
		defs := []map[string]string{{"AttributeName": t.PartitionKey, "AttributeType": t.PartitionKeyType}}
		if t.SortKey != "" {
			keys = append(keys, map[string]string{"AttributeName": t.SortKey, "KeyType": "RANGE"})
			defs = append(defs, map[string]string{"AttributeName": t.SortKey, "AttributeType": "S"})
		}
		var replicas []map[string]string
		for _, reg := range t.Regions {
			replicas = append(replicas, map[string]string{"RegionName": reg, "ReplicaStatus": "ACTIVE"})
		}
		answer(map[string]any{"Table": map[string]any{
			"TableName": t.Name, "TableStatus": "ACTIVE", "KeySchema": keys, "AttributeDefinitions": defs,
			"TableArn": fmt.Sprintf("arn:aws:dynamodb:eu-west-1:%s:table/%s", s.Account, t.Name), "Replicas": replicas,
		}})
	case "AmazonDAXV3.DescribeClusters":
		if s.daxErr != "" {
			fail(http.StatusBadRequest, s.daxErr, "injected: not authorized to perform dax:DescribeClusters")
			return
		}
		var cs []map[string]string
		for _, c := range s.daxClusters {
			cs = append(cs, map[string]string{"ClusterName": c, "ClusterArn": fmt.Sprintf("arn:aws:dax:eu-west-1:%s:cache/%s", s.Account, c)})
		}
		answer(map[string]any{"Clusters": cs})
	default:
		fail(http.StatusBadRequest, "UnknownOperationException", "fakeiam does not answer "+target)
	}
}
