// Package fakeiam is an in-process stand-in for AWS IAM (and STS
// GetCallerIdentity) that speaks their real wire protocol, the AWS query
// protocol: POST / with a form-encoded body (Action=...&Version=...), XML
// responses in the documented shapes with namespace
// https://iam.amazonaws.com/doc/2010-05-08/, and errors as
// <ErrorResponse><Error><Type>Sender</Type><Code>NoSuchEntity</Code>...
// with the HTTP status IAM uses (404, 409, 400). The real
// aws-sdk-go-v2/service/iam and service/sts clients work against it.
//
// It implements the managed-policy life cycle rewind's read-only mode uses
// (CreatePolicy, GetPolicy, DeletePolicy, GetPolicyVersion,
// CreatePolicyVersion with IAM's limit of 5 versions, DeletePolicyVersion,
// SetDefaultPolicyVersion, ListPolicyVersions, ListEntitiesForPolicy),
// role attachments (AttachRolePolicy, DetachRolePolicy,
// ListAttachedRolePolicies) under the per-role managed-policy quota
// (default 10, SetManagedPolicyQuota; LimitExceeded past it), inline role
// policies (PutRolePolicy, GetRolePolicy, DeleteRolePolicy,
// ListRolePolicies), policy tags (TagPolicy, UntagPolicy, ListPolicyTags),
// roles for tests (CreateRole, GetRole), and STS GetCallerIdentity (point
// AWS_ENDPOINT_URL_STS at the same server).
//
// SimulatePrincipalPolicy evaluates a role's attached managed and inline
// policies; eval.go documents the subset of the policy language modelled
// (Allow/Deny, Action and Resource wildcards, StringEquals/StringLike
// with ForAnyValue:/ForAllValues:, so dynamodb:LeadingKeys conditions)
// and what is not (NotAction, NotResource, boundaries, SCPs, resource
// policies, other operators, policy variables). SetPropagationDelay makes
// the evaluation see changes only after a lag, as a slow IAM would.
//
// For the freeze's tests the server also answers two JSON-protocol calls
// (by X-Amz-Target): DynamoDB DescribeTable for tables added with
// AddTable (key schema and global-table replicas, which DynamoDB Local
// does not model) and DAX DescribeClusters (AddDAXCluster, SetDAXError).
// Policy documents come back URL-encoded, as IAM returns them. Nothing is
// paginated: IsTruncated is always false.
//
// Signatures are not verified. Only tests and test tools may import this
// package.
package fakeiam

import (
	"context"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Namespaces of the XML responses.
const (
	IAMNamespace = "https://iam.amazonaws.com/doc/2010-05-08/"
	STSNamespace = "https://sts.amazonaws.com/doc/2011-06-15/"
)

// DefaultAccount is the account id the server pretends to be.
const DefaultAccount = "123456789012"

// maxVersions is IAM's limit on versions of a managed policy.
const maxVersions = 5

// defaultQuota is IAM's default quota of managed policies per role.
const defaultQuota = 10

// maxDocumentLen is IAM's limit on a managed policy document, in
// characters (white space excluded, which the fake does not bother with).
const maxDocumentLen = 6144

// Server is a running fake IAM/STS endpoint.
type Server struct {
	// Endpoint is the URL to point clients at: http://127.0.0.1:PORT.
	Endpoint string
	// Account is the account id in ARNs.
	Account string

	srv *http.Server

	mu       sync.Mutex
	caller   string
	policies map[string]*policy // by ARN
	roles    map[string]*role   // by name
	counts   map[string]int
	seq      int

	quota       int           // managed policies per role
	lag         time.Duration // propagation delay seen by simulation
	history     []snapshot
	tables      map[string]Table
	daxClusters []string
	daxErr      string
}

type policy struct {
	name, path, arn, id, description string
	created, updated                 time.Time
	tags                             map[string]string
	versions                         []*policyVersion
	nextVersion                      int
	defaultID                        string
}

type policyVersion struct {
	id       string
	document string // decoded
	created  time.Time
}

type role struct {
	name, path, arn, id, trust string
	created                    time.Time
	attached                   []string          // policy ARNs in attach order
	inline                     map[string]string // inline policies by name
}

// Start starts a server on 127.0.0.1 on a free port. The caller
// (GetCallerIdentity) is arn:aws:sts::ACCOUNT:assumed-role/operator/session
// until SetCaller changes it.
func Start(ctx context.Context) (*Server, error) {
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("fakeiam: listen: %w", err)
	}
	s := &Server{
		Endpoint: "http://" + ln.Addr().String(),
		Account:  DefaultAccount,
		policies: map[string]*policy{},
		roles:    map[string]*role{},
		counts:   map[string]int{},
		quota:    defaultQuota,
		tables:   map[string]Table{},
	}
	s.caller = fmt.Sprintf("arn:aws:sts::%s:assumed-role/operator/session", s.Account)
	s.srv = &http.Server{Handler: s, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(ln) //nolint:errcheck // ErrServerClosed on Close
	return s, nil
}

// Close stops the server.
func (s *Server) Close() error { return s.srv.Close() }

// SetCaller sets the ARN GetCallerIdentity answers.
func (s *Server) SetCaller(arn string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.caller = arn
}

// Count returns how many requests for action the server has received.
func (s *Server) Count(action string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.counts[action]
}

// AddRole creates a role directly (as CreateRole would).
func (s *Server) AddRole(name string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, ok := s.roles[name]; !ok {
		s.roles[name] = s.newRoleLocked(name, "/", `{"Version":"2012-10-17","Statement":[]}`)
	}
}

// AttachedPolicies returns the ARNs of the policies attached to a role.
func (s *Server) AttachedPolicies(roleName string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r, ok := s.roles[roleName]; ok {
		return slices.Clone(r.attached)
	}
	return nil
}

// PolicyVersions returns a policy's version ids (oldest first) and its
// default version's decoded document.
func (s *Server) PolicyVersions(policyARN string) (ids []string, defaultDoc string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.policies[policyARN]
	if !ok {
		return nil, ""
	}
	for _, v := range p.versions {
		ids = append(ids, v.id)
		if v.id == p.defaultID {
			defaultDoc = v.document
		}
	}
	return ids, defaultDoc
}

func (s *Server) newRoleLocked(name, path, trust string) *role {
	s.seq++
	return &role{
		name: name, path: path, trust: trust, created: time.Now().UTC(),
		arn: fmt.Sprintf("arn:aws:iam::%s:role%s%s", s.Account, path, name),
		id:  fmt.Sprintf("AROA%016d", s.seq),
	}
}

// apiError is an error as IAM sends it.
type apiError struct {
	status int
	code   string
	msg    string
}

func errf(status int, code, format string, args ...any) *apiError {
	return &apiError{status: status, code: code, msg: fmt.Sprintf(format, args...)}
}

func noSuchEntity(format string, args ...any) *apiError {
	return errf(http.StatusNotFound, "NoSuchEntity", format, args...)
}

func invalidInput(format string, args ...any) *apiError {
	return errf(http.StatusBadRequest, "InvalidInput", format, args...)
}

// ServeHTTP handles one query-protocol request.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.writeErr(w, IAMNamespace, invalidInput("cannot parse form: %v", err))
		return
	}
	if target := r.Header.Get("X-Amz-Target"); target != "" {
		if r.Header.Get("Authorization") == "" {
			http.Error(w, `{"__type":"MissingAuthenticationTokenException"}`, http.StatusBadRequest)
			return
		}
		s.serveJSON(w, r, target)
		return
	}
	action := r.Form.Get("Action")
	s.mu.Lock()
	s.counts[action]++
	s.mu.Unlock()
	if r.Header.Get("Authorization") == "" {
		s.writeErr(w, IAMNamespace, errf(http.StatusForbidden, "MissingAuthenticationToken", "Request is missing Authentication Token"))
		return
	}
	ns := IAMNamespace
	if action == "GetCallerIdentity" {
		ns = STSNamespace
	}
	result, aerr := s.dispatch(action, r.Form)
	if aerr != nil {
		s.writeErr(w, ns, aerr)
		return
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<%sResponse xmlns="%s">`, action, ns)
	if result != "" {
		fmt.Fprintf(&b, "<%sResult>%s</%sResult>", action, result, action)
	}
	fmt.Fprintf(&b, "<ResponseMetadata><RequestId>%s</RequestId></ResponseMetadata></%sResponse>", s.requestID(), action)
	w.Header().Set("Content-Type", "text/xml")
	w.Write([]byte(b.String())) //nolint:errcheck
}

func (s *Server) requestID() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.seq++
	return fmt.Sprintf("00000000-0000-4000-8000-%012d", s.seq)
}

func (s *Server) writeErr(w http.ResponseWriter, ns string, e *apiError) {
	typ := "Sender"
	if e.status >= 500 {
		typ = "Receiver"
	}
	w.Header().Set("Content-Type", "text/xml")
	w.WriteHeader(e.status)
	fmt.Fprintf(w, `<ErrorResponse xmlns="%s"><Error><Type>%s</Type><Code>%s</Code><Message>%s</Message></Error><RequestId>%s</RequestId></ErrorResponse>`,
		ns, typ, e.code, esc(e.msg), s.requestID())
}

// esc escapes text for XML character data.
func esc(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s)) //nolint:errcheck // strings.Builder does not fail
	return b.String()
}

// urlEncode percent-encodes s as IAM encodes policy documents (RFC 3986:
// everything but unreserved characters).
func urlEncode(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' {
			b.WriteByte(c)
		} else {
			fmt.Fprintf(&b, "%%%02X", c)
		}
	}
	return b.String()
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func (s *Server) dispatch(action string, f map[string][]string) (string, *apiError) {
	get := func(k string) string {
		if v := f[k]; len(v) > 0 {
			return v[0]
		}
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	defer s.snapshotLocked() // what simulation will see, after the lag
	switch action {
	case "SimulatePrincipalPolicy":
		return s.simulate(f)
	case "PutRolePolicy":
		r, aerr := s.roleLocked(get("RoleName"))
		if aerr != nil {
			return "", aerr
		}
		if aerr := validateDocument(get("PolicyDocument")); aerr != nil {
			return "", aerr
		}
		if get("PolicyName") == "" {
			return "", invalidInput("PolicyName is required")
		}
		if r.inline == nil {
			r.inline = map[string]string{}
		}
		r.inline[get("PolicyName")] = get("PolicyDocument")
		return "", nil
	case "GetRolePolicy":
		r, aerr := s.roleLocked(get("RoleName"))
		if aerr != nil {
			return "", aerr
		}
		d, ok := r.inline[get("PolicyName")]
		if !ok {
			return "", noSuchEntity("The role policy with name %s cannot be found.", get("PolicyName"))
		}
		return fmt.Sprintf("<RoleName>%s</RoleName><PolicyName>%s</PolicyName><PolicyDocument>%s</PolicyDocument>", esc(r.name), esc(get("PolicyName")), urlEncode(d)), nil
	case "DeleteRolePolicy":
		r, aerr := s.roleLocked(get("RoleName"))
		if aerr != nil {
			return "", aerr
		}
		if _, ok := r.inline[get("PolicyName")]; !ok {
			return "", noSuchEntity("The role policy with name %s cannot be found.", get("PolicyName"))
		}
		delete(r.inline, get("PolicyName"))
		return "", nil
	case "ListRolePolicies":
		r, aerr := s.roleLocked(get("RoleName"))
		if aerr != nil {
			return "", aerr
		}
		var b strings.Builder
		b.WriteString("<IsTruncated>false</IsTruncated><PolicyNames>")
		for _, n := range slices.Sorted(mapsKeys(r.inline)) {
			b.WriteString("<member>" + esc(n) + "</member>")
		}
		b.WriteString("</PolicyNames>")
		return b.String(), nil
	case "TagPolicy":
		p, aerr := s.policyLocked(get("PolicyArn"))
		if aerr != nil {
			return "", aerr
		}
		if p.tags == nil {
			p.tags = map[string]string{}
		}
		for i := 1; ; i++ {
			k, ok := f["Tags.member."+strconv.Itoa(i)+".Key"]
			if !ok {
				break
			}
			p.tags[k[0]] = get("Tags.member." + strconv.Itoa(i) + ".Value")
		}
		if len(p.tags) > 50 {
			return "", errf(http.StatusConflict, "LimitExceeded", "Cannot exceed quota for TagsPerPolicy: 50")
		}
		return "", nil
	case "UntagPolicy":
		p, aerr := s.policyLocked(get("PolicyArn"))
		if aerr != nil {
			return "", aerr
		}
		for i := 1; ; i++ {
			k, ok := f["TagKeys.member."+strconv.Itoa(i)]
			if !ok {
				break
			}
			delete(p.tags, k[0])
		}
		return "", nil
	case "ListPolicyTags":
		p, aerr := s.policyLocked(get("PolicyArn"))
		if aerr != nil {
			return "", aerr
		}
		var b strings.Builder
		b.WriteString("<IsTruncated>false</IsTruncated><Tags>")
		for _, k := range slices.Sorted(mapsKeys(p.tags)) {
			fmt.Fprintf(&b, "<member><Key>%s</Key><Value>%s</Value></member>", esc(k), esc(p.tags[k]))
		}
		b.WriteString("</Tags>")
		return b.String(), nil
	case "GetCallerIdentity":
		return fmt.Sprintf("<Arn>%s</Arn><UserId>AROA0000000000000000:session</UserId><Account>%s</Account>", esc(s.caller), s.Account), nil
	case "CreatePolicy":
		return s.createPolicy(get("PolicyName"), get("Path"), get("PolicyDocument"), get("Description"))
	case "GetPolicy":
		p, aerr := s.policyLocked(get("PolicyArn"))
		if aerr != nil {
			return "", aerr
		}
		return "<Policy>" + s.policyXML(p) + "</Policy>", nil
	case "DeletePolicy":
		p, aerr := s.policyLocked(get("PolicyArn"))
		if aerr != nil {
			return "", aerr
		}
		if n := s.attachmentsLocked(p.arn); n > 0 {
			return "", errf(http.StatusConflict, "DeleteConflict", "Cannot delete a policy attached to entities.")
		}
		if len(p.versions) > 1 {
			return "", errf(http.StatusConflict, "DeleteConflict", "This policy has more than one version. Before you delete a policy, you must delete the policy's versions. The default version is deleted with the policy.")
		}
		delete(s.policies, p.arn)
		return "", nil
	case "GetPolicyVersion":
		p, aerr := s.policyLocked(get("PolicyArn"))
		if aerr != nil {
			return "", aerr
		}
		v := p.version(get("VersionId"))
		if v == nil {
			return "", noSuchEntity("Policy %s version %s does not exist or is not attachable.", p.arn, get("VersionId"))
		}
		return "<PolicyVersion>" + p.versionXML(v, true) + "</PolicyVersion>", nil
	case "CreatePolicyVersion":
		p, aerr := s.policyLocked(get("PolicyArn"))
		if aerr != nil {
			return "", aerr
		}
		if aerr := validateDocument(get("PolicyDocument")); aerr != nil {
			return "", aerr
		}
		if len(p.versions) >= maxVersions {
			return "", errf(http.StatusConflict, "LimitExceeded", "A managed policy can have up to %d versions. Before you create a new version, you must delete an existing version.", maxVersions)
		}
		v := p.addVersion(get("PolicyDocument"))
		if get("SetAsDefault") == "true" {
			p.defaultID = v.id
		}
		p.updated = v.created
		return "<PolicyVersion>" + p.versionXML(v, false) + "</PolicyVersion>", nil
	case "DeletePolicyVersion":
		p, aerr := s.policyLocked(get("PolicyArn"))
		if aerr != nil {
			return "", aerr
		}
		id := get("VersionId")
		if p.version(id) == nil {
			return "", noSuchEntity("Policy %s version %s does not exist or is not attachable.", p.arn, id)
		}
		if id == p.defaultID {
			return "", errf(http.StatusConflict, "DeleteConflict", "Cannot delete the default version of a policy.")
		}
		p.versions = slices.DeleteFunc(p.versions, func(v *policyVersion) bool { return v.id == id })
		return "", nil
	case "SetDefaultPolicyVersion":
		p, aerr := s.policyLocked(get("PolicyArn"))
		if aerr != nil {
			return "", aerr
		}
		if p.version(get("VersionId")) == nil {
			return "", noSuchEntity("Policy %s version %s does not exist or is not attachable.", p.arn, get("VersionId"))
		}
		p.defaultID = get("VersionId")
		return "", nil
	case "ListPolicyVersions":
		p, aerr := s.policyLocked(get("PolicyArn"))
		if aerr != nil {
			return "", aerr
		}
		var b strings.Builder
		b.WriteString("<IsTruncated>false</IsTruncated><Versions>")
		// IAM lists the newest first.
		for i := len(p.versions) - 1; i >= 0; i-- {
			b.WriteString("<member>" + p.versionXML(p.versions[i], false) + "</member>")
		}
		b.WriteString("</Versions>")
		return b.String(), nil
	case "ListEntitiesForPolicy":
		p, aerr := s.policyLocked(get("PolicyArn"))
		if aerr != nil {
			return "", aerr
		}
		filter := get("EntityFilter")
		var b strings.Builder
		b.WriteString("<IsTruncated>false</IsTruncated><PolicyGroups></PolicyGroups><PolicyUsers></PolicyUsers><PolicyRoles>")
		if filter == "" || filter == "Role" {
			for _, r := range s.sortedRolesLocked() {
				if slices.Contains(r.attached, p.arn) {
					fmt.Fprintf(&b, "<member><RoleName>%s</RoleName><RoleId>%s</RoleId></member>", esc(r.name), r.id)
				}
			}
		}
		b.WriteString("</PolicyRoles>")
		return b.String(), nil
	case "CreateRole":
		name := get("RoleName")
		if name == "" {
			return "", invalidInput("RoleName is required")
		}
		if _, ok := s.roles[name]; ok {
			return "", errf(http.StatusConflict, "EntityAlreadyExists", "Role with name %s already exists.", name)
		}
		path := get("Path")
		if path == "" {
			path = "/"
		}
		r := s.newRoleLocked(name, path, get("AssumeRolePolicyDocument"))
		s.roles[name] = r
		return "<Role>" + r.xml() + "</Role>", nil
	case "GetRole":
		r, aerr := s.roleLocked(get("RoleName"))
		if aerr != nil {
			return "", aerr
		}
		return "<Role>" + r.xml() + "</Role>", nil
	case "AttachRolePolicy":
		r, aerr := s.roleLocked(get("RoleName"))
		if aerr != nil {
			return "", aerr
		}
		p, ok := s.policies[get("PolicyArn")]
		if !ok {
			return "", noSuchEntity("Policy %s does not exist or is not attachable.", get("PolicyArn"))
		}
		// Attaching an attached policy is a no-op in IAM.
		if !slices.Contains(r.attached, p.arn) {
			if len(r.attached) >= s.quota {
				return "", errf(http.StatusConflict, "LimitExceeded", "Cannot exceed quota for PoliciesPerRole: %d", s.quota)
			}
			r.attached = append(r.attached, p.arn)
		}
		return "", nil
	case "DetachRolePolicy":
		r, aerr := s.roleLocked(get("RoleName"))
		if aerr != nil {
			return "", aerr
		}
		arn := get("PolicyArn")
		if !slices.Contains(r.attached, arn) {
			return "", noSuchEntity("Policy %s was not found.", arn)
		}
		r.attached = slices.DeleteFunc(r.attached, func(a string) bool { return a == arn })
		return "", nil
	case "ListAttachedRolePolicies":
		r, aerr := s.roleLocked(get("RoleName"))
		if aerr != nil {
			return "", aerr
		}
		var b strings.Builder
		b.WriteString("<IsTruncated>false</IsTruncated><AttachedPolicies>")
		for _, a := range r.attached {
			name := a[strings.LastIndexByte(a, '/')+1:]
			fmt.Fprintf(&b, "<member><PolicyArn>%s</PolicyArn><PolicyName>%s</PolicyName></member>", esc(a), esc(name))
		}
		b.WriteString("</AttachedPolicies>")
		return b.String(), nil
	}
	return "", errf(http.StatusBadRequest, "InvalidAction", "Could not find operation %s for version 2010-05-08", action)
}

func (s *Server) sortedRolesLocked() []*role {
	rs := make([]*role, 0, len(s.roles))
	for _, r := range s.roles {
		rs = append(rs, r)
	}
	sort.Slice(rs, func(i, j int) bool { return rs[i].name < rs[j].name })
	return rs
}

func (s *Server) attachmentsLocked(policyARN string) int {
	n := 0
	for _, r := range s.roles {
		if slices.Contains(r.attached, policyARN) {
			n++
		}
	}
	return n
}

func (s *Server) policyLocked(arn string) (*policy, *apiError) {
	if arn == "" {
		return nil, invalidInput("PolicyArn is required")
	}
	p, ok := s.policies[arn]
	if !ok {
		return nil, noSuchEntity("Policy %s does not exist or is not attachable.", arn)
	}
	return p, nil
}

func (s *Server) roleLocked(name string) (*role, *apiError) {
	r, ok := s.roles[name]
	if !ok {
		return nil, noSuchEntity("The role with name %s cannot be found.", name)
	}
	return r, nil
}

func validateDocument(doc string) *apiError {
	if doc == "" {
		return invalidInput("PolicyDocument is required")
	}
	if len(doc) > maxDocumentLen {
		return errf(http.StatusConflict, "LimitExceeded", "Cannot exceed quota for PolicySize: %d", maxDocumentLen)
	}
	var v struct {
		Version   string
		Statement json.RawMessage
	}
	if err := json.Unmarshal([]byte(doc), &v); err != nil || len(v.Statement) == 0 {
		return errf(http.StatusBadRequest, "MalformedPolicyDocument", "Syntax errors in policy.")
	}
	return nil
}

func (s *Server) createPolicy(name, path, doc, description string) (string, *apiError) {
	if name == "" {
		return "", invalidInput("PolicyName is required")
	}
	if path == "" {
		path = "/"
	}
	if aerr := validateDocument(doc); aerr != nil {
		return "", aerr
	}
	arn := fmt.Sprintf("arn:aws:iam::%s:policy%s%s", s.Account, path, name)
	if _, ok := s.policies[arn]; ok {
		return "", errf(http.StatusConflict, "EntityAlreadyExists", "A policy called %s already exists. Duplicate names are not allowed.", name)
	}
	s.seq++
	now := time.Now().UTC()
	p := &policy{name: name, path: path, arn: arn, id: fmt.Sprintf("ANPA%016d", s.seq), description: description, created: now, updated: now, nextVersion: 1}
	v := p.addVersion(doc)
	p.defaultID = v.id
	s.policies[arn] = p
	return "<Policy>" + s.policyXML(p) + "</Policy>", nil
}

func (p *policy) addVersion(doc string) *policyVersion {
	v := &policyVersion{id: "v" + strconv.Itoa(p.nextVersion), document: doc, created: time.Now().UTC()}
	p.nextVersion++
	p.versions = append(p.versions, v)
	return v
}

func (p *policy) version(id string) *policyVersion {
	for _, v := range p.versions {
		if v.id == id {
			return v
		}
	}
	return nil
}

func (s *Server) policyXML(p *policy) string {
	return fmt.Sprintf("<PolicyName>%s</PolicyName><PolicyId>%s</PolicyId><Arn>%s</Arn><Path>%s</Path><DefaultVersionId>%s</DefaultVersionId><AttachmentCount>%d</AttachmentCount><PermissionsBoundaryUsageCount>0</PermissionsBoundaryUsageCount><IsAttachable>true</IsAttachable><Description>%s</Description><CreateDate>%s</CreateDate><UpdateDate>%s</UpdateDate>",
		esc(p.name), p.id, esc(p.arn), esc(p.path), p.defaultID, s.attachmentsLocked(p.arn), esc(p.description), ts(p.created), ts(p.updated))
}

// versionXML renders a version. The document, URL-encoded as IAM sends it,
// is included only where IAM includes it (GetPolicyVersion).
func (p *policy) versionXML(v *policyVersion, withDoc bool) string {
	doc := ""
	if withDoc {
		doc = "<Document>" + urlEncode(v.document) + "</Document>"
	}
	return fmt.Sprintf("%s<VersionId>%s</VersionId><IsDefaultVersion>%t</IsDefaultVersion><CreateDate>%s</CreateDate>", doc, v.id, v.id == p.defaultID, ts(v.created))
}

func (r *role) xml() string {
	return fmt.Sprintf("<Path>%s</Path><RoleName>%s</RoleName><RoleId>%s</RoleId><Arn>%s</Arn><CreateDate>%s</CreateDate><AssumeRolePolicyDocument>%s</AssumeRolePolicyDocument><MaxSessionDuration>3600</MaxSessionDuration>",
		esc(r.path), esc(r.name), r.id, esc(r.arn), ts(r.created), urlEncode(r.trust))
}
