package deploy_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// policyDoc is an IAM policy document. Action and Resource may be a string
// or a list in IAM; stringList accepts both.
type policyDoc struct {
	Version   string
	Statement []policyStatement
}

type policyStatement struct {
	Sid       string
	Effect    string
	Action    stringList
	Resource  stringList
	Condition map[string]map[string]stringList

	// Set when present, so the test can reject them.
	NotAction   any
	NotResource any
	Principal   any
}

type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	var one string
	if err := json.Unmarshal(b, &one); err == nil {
		*l = []string{one}
		return nil
	}
	var many []string
	if err := json.Unmarshal(b, &many); err != nil {
		return fmt.Errorf("want a string or a list of strings, got %s", b)
	}
	*l = many
	return nil
}

func loadOperatorPolicy(t *testing.T) policyDoc {
	t.Helper()
	data, err := os.ReadFile("operator-policy.json")
	if err != nil {
		t.Fatal(err)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	var doc policyDoc
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("operator-policy.json: %v", err)
	}
	if dec.More() {
		t.Fatal("operator-policy.json: data after the policy document")
	}
	return doc
}

// iamGlob reports whether s matches the IAM pattern p, in which * matches
// any run of characters and ? any one character.
func iamGlob(p, s string, foldCase bool) bool {
	var re strings.Builder
	re.WriteString("^")
	if foldCase {
		re.WriteString("(?i)")
	}
	for _, r := range p {
		switch r {
		case '*':
			re.WriteString(".*")
		case '?':
			re.WriteString(".")
		default:
			re.WriteString(regexp.QuoteMeta(string(r)))
		}
	}
	re.WriteString("$")
	return regexp.MustCompile(re.String()).MatchString(s)
}

// allows evaluates the policy for one request the way IAM does within one
// identity policy: an explicit Deny wins, then any matching Allow. ctx holds
// the request's condition keys. Condition operators this evaluator does not
// know fail the test rather than being guessed at.
func (doc policyDoc) allows(t *testing.T, action, resource string, ctx map[string]string) bool {
	t.Helper()
	allowed := false
	for _, s := range doc.Statement {
		if !s.matches(t, action, resource, ctx) {
			continue
		}
		if s.Effect == "Deny" {
			return false
		}
		allowed = true
	}
	return allowed
}

func (s policyStatement) matches(t *testing.T, action, resource string, ctx map[string]string) bool {
	t.Helper()
	match := func(patterns []string, v string, foldCase bool) bool {
		for _, p := range patterns {
			if iamGlob(p, v, foldCase) {
				return true
			}
		}
		return false
	}
	if !match(s.Action, action, true) || !match(s.Resource, resource, false) {
		return false
	}
	for op, keys := range s.Condition {
		for key, values := range keys {
			got, ok := ctx[key]
			if !ok {
				return false
			}
			switch op {
			// ArnEquals and ArnLike both take wildcards.
			case "ArnEquals", "ArnLike", "StringLike":
				if !match(values, got, false) {
					return false
				}
			case "StringEquals":
				if !slices.Contains(values, got) {
					return false
				}
			default:
				t.Fatalf("statement %s: condition operator %s is not known to this test", s.Sid, op)
			}
		}
	}
	return true
}

func TestOperatorPolicyShape(t *testing.T) {
	doc := loadOperatorPolicy(t)
	if doc.Version != "2012-10-17" {
		t.Errorf("Version is %q, want 2012-10-17 (the older version does not expand policy variables)", doc.Version)
	}
	if len(doc.Statement) == 0 {
		t.Fatal("no statements")
	}
	sids := map[string]bool{}
	for i, s := range doc.Statement {
		where := fmt.Sprintf("statement %d (%s)", i, s.Sid)
		if s.Sid == "" || sids[s.Sid] {
			t.Errorf("%s: want a unique Sid, so a denial can be traced to its statement", where)
		}
		sids[s.Sid] = true
		if s.Effect != "Allow" && s.Effect != "Deny" {
			t.Errorf("%s: Effect is %q", where, s.Effect)
		}
		if s.NotAction != nil || s.NotResource != nil || s.Principal != nil {
			t.Errorf("%s: NotAction, NotResource and Principal have no place in an identity policy granting named actions", where)
		}
		if len(s.Action) == 0 || len(s.Resource) == 0 {
			t.Errorf("%s: want both Action and Resource", where)
		}
		for _, a := range s.Action {
			if strings.ContainsAny(a, "*?") {
				t.Errorf("%s: wildcard action %s", where, a)
			}
			if service, _, ok := strings.Cut(a, ":"); !ok || service == "" {
				t.Errorf("%s: action %q has no service prefix", where, a)
			}
		}
		for _, r := range s.Resource {
			// dax:DescribeClusters without cluster names is on every
			// cluster, and appconfig:ListApplications has no resource
			// type: the only actions here that take no resource.
			if r == "*" && (slices.Equal(s.Action, []string{"dax:DescribeClusters"}) || slices.Equal(s.Action, []string{"appconfig:ListApplications"})) {
				continue
			}
			if r == "*" || !strings.HasPrefix(r, "arn:aws:") {
				t.Errorf("%s: Resource %q; name the ARN", where, r)
			}
		}
	}
}

// TestOperatorPolicyGrants evaluates the requests the operator makes during
// an incident, and some it must not be able to make, against the policy.
// The resource names are the placeholders that deploy/README.md explains.
func TestOperatorPolicyGrants(t *testing.T) {
	doc := loadOperatorPolicy(t)
	const (
		table     = "arn:aws:dynamodb:REGION:ACCOUNT:table/TABLE"
		restored  = "arn:aws:dynamodb:REGION:ACCOUNT:table/RESTORE_PREFIX20250101T120000" // rewind restore's default target name
		audit     = "arn:aws:dynamodb:REGION:ACCOUNT:table/AUDIT_TABLE"
		other     = "arn:aws:dynamodb:REGION:ACCOUNT:table/OTHER"
		denyWrite = "arn:aws:iam::ACCOUNT:policy/DENY_WRITE_POLICY"
		appRole   = "arn:aws:iam::ACCOUNT:role/APP_ROLE"
		param     = "arn:aws:ssm:REGION:ACCOUNT:parameter/read-only-customers"
		bucket    = "arn:aws:s3:::CAPTURE_BUCKET"
		// streamhandler's object layout: PREFIX/table=T/dt=YYYY-MM-DD/hour=HH/<first record>.parquet
		parquet      = "arn:aws:s3:::CAPTURE_BUCKET/PARQUET_PREFIX/table=TABLE/dt=2025-01-01/hour=12/2025-01-01T12-00-00-000-000000000000000000001-000000000000000000080.parquet"
		exportObj    = "arn:aws:s3:::EXPORT_BUCKET/EXPORT_PREFIX/AWSDynamoDB/01700000000000-abcdef12/manifest-summary.json"
		exportData   = "arn:aws:s3:::EXPORT_BUCKET/EXPORT_PREFIX/AWSDynamoDB/data/4w4vjmcvxzhq4mohpyjdyq72le.json.gz"
		exportDesc   = "arn:aws:dynamodb:REGION:ACCOUNT:table/TABLE/export/01700000000000-abcdef12"
		athenaWG     = "arn:aws:athena:REGION:ACCOUNT:workgroup/ATHENA_WORKGROUP"
		glueCatalog  = "arn:aws:glue:REGION:ACCOUNT:catalog"
		glueDB       = "arn:aws:glue:REGION:ACCOUNT:database/GLUE_DATABASE"
		glueTable    = "arn:aws:glue:REGION:ACCOUNT:table/GLUE_DATABASE/GLUE_TABLE"
		resultBucket = "arn:aws:s3:::ATHENA_RESULT_BUCKET"
		resultObj    = "arn:aws:s3:::ATHENA_RESULT_BUCKET/ATHENA_RESULT_PREFIX/q-1.csv"
	)
	type req struct {
		action, resource string
		ctx              map[string]string
	}
	each := func(resource string, actions ...string) []req {
		var out []req
		for _, a := range actions {
			out = append(out, req{a, resource, nil})
		}
		return out
	}
	read := []string{"dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:DescribeTable"}
	groups := []struct {
		name  string
		want  bool
		reqs  []req
		notes string
	}{
		{"read production table", true, append(each(table, read...), each(table+"/index/gsi1", "dynamodb:Query")...), ""},
		{"read restored tables", true, append(each(restored, read...), each(restored+"/index/gsi1", "dynamodb:Query")...), ""},
		{"read audit table", true, append(each(audit, read...), append(each(audit+"/index/item-history", "dynamodb:Query"), each(audit+"/index/hour", "dynamodb:Query")...)...), ""},
		{"patch production table", true, each(table, "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem"), ""},
		{"point-in-time restore", true, each(table, "dynamodb:RestoreTableToPointInTime", "dynamodb:DescribeContinuousBackups", "dynamodb:UpdateContinuousBackups"), ""},
		// AWS: "DynamoDB RestoreTableToPointInTime permissions are necessary
		// on the source table, and DynamoDB read and write permissions on
		// the target table are necessary for restore functionality."
		{"restore target table", true, each(restored, "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:GetItem", "dynamodb:Query", "dynamodb:Scan", "dynamodb:BatchWriteItem"), ""},
		{"export", true, append(append(each(table, "dynamodb:ExportTableToPointInTime"), each(exportDesc, "dynamodb:DescribeExport")...),
			each(exportObj, "s3:PutObject", "s3:AbortMultipartUpload", "s3:PutObjectAcl")...), ""},
		// rewind index --export reads the manifests and the data files.
		{"read exports", true, append(each(exportObj, "s3:GetObject"), each(exportData, "s3:GetObject")...), ""},
		{"read-only customers parameter", true, each(param, "ssm:GetParameter", "ssm:PutParameter"), ""},
		{"DenyWrite policy", true, each(denyWrite, "iam:CreatePolicy", "iam:GetPolicy", "iam:GetPolicyVersion", "iam:CreatePolicyVersion", "iam:DeletePolicyVersion", "iam:ListPolicyVersions"), ""},
		{"attach DenyWrite to application roles", true, []req{
			{"iam:AttachRolePolicy", appRole, map[string]string{"iam:PolicyARN": denyWrite}},
			{"iam:DetachRolePolicy", appRole, map[string]string{"iam:PolicyARN": denyWrite}},
			{"iam:ListAttachedRolePolicies", appRole, nil},
		}, ""},
		{"read capture bucket", true, []req{
			{"s3:ListBucket", bucket, map[string]string{"s3:prefix": "PARQUET_PREFIX/"}},
			{"s3:ListBucket", bucket, map[string]string{"s3:prefix": "PARQUET_PREFIX/table=TABLE/dt=2025-01-01/"}},
			{"s3:GetObject", parquet, nil},
		}, ""},

		// rewind query --engine athena: the Glue table, the query in its
		// workgroup, Athena reading the capture with the caller's
		// credentials, and the results written to and read from the
		// result location ("Access to Amazon S3" and "Fine-grained
		// access to databases and tables in the AWS Glue Data Catalog"
		// in the Athena guide).
		{"athena engine", true, append(append(append(append(
			each(athenaWG, "athena:StartQueryExecution", "athena:GetQueryExecution", "athena:GetQueryResults", "athena:StopQueryExecution", "athena:GetWorkGroup"),
			each(glueCatalog, "glue:GetDatabase", "glue:CreateDatabase", "glue:GetTable", "glue:CreateTable", "glue:UpdateTable")...),
			append(each(glueDB, "glue:GetDatabase", "glue:CreateDatabase", "glue:GetTable", "glue:CreateTable", "glue:UpdateTable"),
				each(glueTable, "glue:GetTable", "glue:CreateTable", "glue:UpdateTable")...)...),
			append(each(bucket, "s3:GetBucketLocation"), each(resultBucket, "s3:GetBucketLocation")...)...),
			append(each(resultObj, "s3:PutObject", "s3:GetObject", "s3:AbortMultipartUpload", "s3:ListMultipartUploadParts"),
				req{"s3:ListBucket", resultBucket, map[string]string{"s3:prefix": "ATHENA_RESULT_PREFIX/q-1.csv"}},
				req{"s3:ListBucket", bucket, map[string]string{"s3:prefix": "PARQUET_PREFIX/table=TABLE/dt=2025-01-01/hour=12/"}},
				req{"s3:GetObject", parquet, nil})...), ""},
		{"athena outside its workgroup, table and result prefix", false, append(append(
			each("arn:aws:athena:REGION:ACCOUNT:workgroup/other", "athena:StartQueryExecution", "athena:GetQueryResults"),
			append(each("arn:aws:glue:REGION:ACCOUNT:table/GLUE_DATABASE/other", "glue:UpdateTable", "glue:GetTable"),
				each(glueTable, "glue:DeleteTable", "glue:BatchDeleteTable")...)...),
			append(each("arn:aws:s3:::ATHENA_RESULT_BUCKET/other/q-1.csv", "s3:PutObject", "s3:GetObject"),
				req{"s3:ListBucket", resultBucket, map[string]string{"s3:prefix": "other/"}})...), "queries, tables and results of others"},

		{"attach any other policy", false, []req{
			{"iam:AttachRolePolicy", appRole, map[string]string{"iam:PolicyARN": "arn:aws:iam::aws:policy/AdministratorAccess"}},
			{"iam:AttachRolePolicy", appRole, nil},
			{"iam:AttachRolePolicy", "arn:aws:iam::ACCOUNT:role/OPERATOR", map[string]string{"iam:PolicyARN": denyWrite}},
		}, "the operator could grant itself anything"},
		{"write the audit table", false, each(audit, "dynamodb:PutItem", "dynamodb:DeleteItem", "dynamodb:UpdateItem", "dynamodb:BatchWriteItem"), "the audit trail is the Lambda's alone"},
		{"rewrite captured history", false, each(parquet, "s3:PutObject", "s3:DeleteObject"), "the Parquet copy is the evidence"},
		{"touch other tables", false, append(each(other, "dynamodb:PutItem", "dynamodb:Scan", "dynamodb:RestoreTableToPointInTime"), each(table, "dynamodb:DeleteTable", "dynamodb:UpdateTable")...), ""},
		{"other parameters", false, each("arn:aws:ssm:REGION:ACCOUNT:parameter/db-password", "ssm:GetParameter", "ssm:PutParameter"), ""},
		{"other AppConfig applications", false, each("arn:aws:appconfig:REGION:ACCOUNT:application/otherap/configurationprofile/p123456", "appconfig:CreateHostedConfigurationVersion", "appconfig:StartDeployment"), ""},
		{"read other export objects", false, each("arn:aws:s3:::EXPORT_BUCKET/other/x.json", "s3:GetObject"), ""},
		{"list other prefixes", false, []req{{"s3:ListBucket", bucket, map[string]string{"s3:prefix": "private/"}}}, ""},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, r := range g.reqs {
				if got := doc.allows(t, r.action, r.resource, r.ctx); got != g.want {
					t.Errorf("%s on %s (context %v): allowed %v, want %v %s", r.action, r.resource, r.ctx, got, g.want, g.notes)
				}
			}
		})
	}
}

// TestOperatorPolicyPlaceholdersDocumented checks that every placeholder
// in the policy's ARNs is explained in README.md.
func TestOperatorPolicyPlaceholdersDocumented(t *testing.T) {
	doc := loadOperatorPolicy(t)
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	placeholder := regexp.MustCompile(`\b[A-Z][A-Z0-9_]{2,}\b`)
	seen := map[string]bool{}
	for _, s := range doc.Statement {
		values := append([]string{}, s.Resource...)
		for _, keys := range s.Condition {
			for _, v := range keys {
				values = append(values, v...)
			}
		}
		for _, v := range values {
			for _, p := range placeholder.FindAllString(v, -1) {
				if !seen[p] && !bytes.Contains(readme, []byte("`"+p+"`")) {
					t.Errorf("placeholder %s (in %s) is not explained in README.md as `%s`", p, v, p)
				}
				seen[p] = true
			}
		}
	}
	for _, p := range []string{"REGION", "ACCOUNT", "TABLE", "RESTORE_PREFIX"} {
		if !seen[p] {
			t.Errorf("the policy does not use placeholder %s", p)
		}
	}
}

func TestIAMGlob(t *testing.T) {
	tests := []struct {
		pattern, s string
		fold, want bool
	}{
		{"arn:aws:s3:::b/p/*", "arn:aws:s3:::b/p/x/y", false, true},
		{"arn:aws:s3:::b/p/*", "arn:aws:s3:::b/q/x", false, false},
		{"table/R*", "table/R", false, true},
		{"table/R?", "table/R", false, false},
		{"dynamodb:GetItem", "DynamoDB:getitem", true, true},
		{"dynamodb:GetItem", "DynamoDB:getitem", false, false},
		{"a.b", "axb", false, false},
	}
	for _, tt := range tests {
		if got := iamGlob(tt.pattern, tt.s, tt.fold); got != tt.want {
			t.Errorf("iamGlob(%q, %q, %v) = %v, want %v", tt.pattern, tt.s, tt.fold, got, tt.want)
		}
	}
}
