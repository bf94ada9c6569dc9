// Package awsrec records the AWS calls a test makes against the local
// stand-ins and turns each into the IAM requests AWS authorizes it as, so
// that tests can evaluate them against the deployed policies
// (internal/iamsim).
//
// A Recorder is a set of recording reverse proxies: Proxy(upstream) returns
// an endpoint to give the code under test instead of the stand-in's own.
// Calls are recorded under the caller set with As ("operator", "lambda");
// calls made while no caller is set (the test's own setup) are not.
//
// Requests maps one call to IAM requests the way the Service Authorization
// Reference authorizes it: BatchWriteItem once per table, a transaction as
// its parts, HeadObject as s3:GetObject, ListObjectsV2 as s3:ListBucket
// with s3:prefix, AttachRolePolicy with iam:PolicyARN. An operation it does
// not know is an error, so a new call cannot slip past the policy check.
//
// Only tests may import this package.
package awsrec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
)

// Call is one recorded request, decoded as far as its protocol allows.
type Call struct {
	// Caller is what As named when the call was made.
	Caller string
	// Service is the SigV4 signing name (dynamodb, s3, ssm, appconfig, iam,
	// sts).
	Service string
	// Operation is the API operation, such as PutItem or
	// ListObjectsV2 (S3 operations are inferred from method and URL).
	Operation string
	// Body is the decoded JSON body of JSON-protocol services.
	Body map[string]any
	// Form holds the parameters of query-protocol services (IAM, STS).
	Form url.Values
	// Method, Path and Query are S3's request line, path-style.
	Method string
	Path   string
	Query  url.Values
	// Header holds the S3 request's headers that change authorization
	// (x-amz-copy-source).
	Header http.Header
}

func (c Call) String() string {
	s := c.Caller + ": " + c.Service + " " + c.Operation
	if c.Service == "s3" {
		s += " " + c.Method + " " + c.Path
	}
	return s
}

// Recorder records calls through its proxies. The zero value is ready.
type Recorder struct {
	mu     sync.Mutex
	caller string
	calls  []Call
}

// As sets the caller of the calls made from now on; "" stops recording.
func (r *Recorder) As(caller string) {
	r.mu.Lock()
	r.caller = caller
	r.mu.Unlock()
}

// Calls returns the calls recorded so far.
func (r *Recorder) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Call(nil), r.calls...)
}

// Proxy starts a reverse proxy to upstream (http://host:port) that records
// every request, stopped when the test ends, and returns its endpoint.
func (r *Recorder) Proxy(t testing.TB, upstream string) string {
	t.Helper()
	u, err := url.Parse(upstream)
	if err != nil {
		t.Fatalf("awsrec: upstream %q: %v", upstream, err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		req.Body = io.NopCloser(bytes.NewReader(body))
		r.mu.Lock()
		caller := r.caller
		r.mu.Unlock()
		if caller != "" {
			c := decode(req, body)
			c.Caller = caller
			r.mu.Lock()
			r.calls = append(r.calls, c)
			r.mu.Unlock()
		}
		rp.ServeHTTP(w, req)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// scopeRE takes the access key's scope from a SigV4 Authorization header:
// Credential=AKID/20250101/us-east-1/dynamodb/aws4_request.
var scopeRE = regexp.MustCompile(`Credential=[^/]+/[0-9]{8}/[^/]+/([^/]+)/aws4_request`)

func decode(req *http.Request, body []byte) Call {
	c := Call{}
	if m := scopeRE.FindStringSubmatch(req.Header.Get("Authorization")); m != nil {
		c.Service = m[1]
	}
	if target := req.Header.Get("X-Amz-Target"); target != "" {
		prefix, op, _ := strings.Cut(target, ".")
		c.Operation = op
		if strings.HasPrefix(prefix, "DynamoDBStreams") {
			c.Service = "dynamodbstreams"
		}
		_ = json.Unmarshal(body, &c.Body)
		return c
	}
	switch c.Service {
	case "iam", "sts":
		c.Form, _ = url.ParseQuery(string(body))
		c.Operation = c.Form.Get("Action")
	case "appconfig":
		// REST-JSON: the operation is in the method and path.
		c.Method, c.Path, c.Query = req.Method, req.URL.Path, req.URL.Query()
		_ = json.Unmarshal(body, &c.Body)
		c.Operation = appconfigOperation(c)
	case "s3":
		c.Method, c.Path, c.Query = req.Method, req.URL.Path, req.URL.Query()
		c.Header = http.Header{}
		if v := req.Header.Get("X-Amz-Copy-Source"); v != "" {
			c.Header.Set("X-Amz-Copy-Source", v)
		}
		c.Operation = s3Operation(c)
	}
	return c
}

func s3Operation(c Call) string {
	bucket, key := splitPath(c.Path)
	q := c.Query
	switch {
	case key == "" && c.Method == http.MethodGet && q.Has("location"):
		return "GetBucketLocation"
	case key == "" && c.Method == http.MethodGet:
		if q.Get("list-type") == "2" {
			return "ListObjectsV2"
		}
		return "ListObjects"
	case key == "" && c.Method == http.MethodHead:
		return "HeadBucket"
	case key == "" && c.Method == http.MethodPut && bucket != "":
		return "CreateBucket"
	case c.Method == http.MethodPost && q.Has("uploads"):
		return "CreateMultipartUpload"
	case c.Method == http.MethodPost && q.Has("uploadId"):
		return "CompleteMultipartUpload"
	case c.Method == http.MethodPut && q.Has("uploadId"):
		return "UploadPart"
	case c.Method == http.MethodDelete && q.Has("uploadId"):
		return "AbortMultipartUpload"
	case c.Method == http.MethodPut && c.Header.Get("X-Amz-Copy-Source") != "":
		return "CopyObject"
	case c.Method == http.MethodPut:
		return "PutObject"
	case c.Method == http.MethodGet:
		return "GetObject"
	case c.Method == http.MethodHead:
		return "HeadObject"
	case c.Method == http.MethodDelete:
		return "DeleteObject"
	}
	return c.Method + " " + c.Path
}

func splitPath(p string) (bucket, key string) {
	p = strings.TrimPrefix(p, "/")
	bucket, key, _ = strings.Cut(p, "/")
	return bucket, key
}

// Request is one IAM authorization a call needs: iamsim.Request without
// the principal.
type Request struct {
	Action   string
	Resource string
	Context  map[string][]string
}

// Requests maps c to the IAM requests AWS authorizes it as, with ARNs in
// account and region (the stand-ins' own accounts and regions are
// replaced). A nil result with a nil error means the call needs no
// permission (sts:GetCallerIdentity).
func Requests(c Call, account, region string) ([]Request, error) {
	m := mapper{account: account, region: region}
	switch c.Service {
	case "dynamodb":
		return m.dynamodb(c)
	case "dynamodbstreams":
		return m.streams(c)
	case "s3":
		return m.s3(c)
	case "ssm":
		return m.ssm(c)
	case "appconfig":
		return m.appconfig(c)
	case "iam":
		return m.iam(c)
	case "logs":
		return m.logs(c)
	case "dax":
		if c.Operation == "DescribeClusters" {
			// Without ClusterNames the call is on every cluster: the
			// catalogue's resource type (cache) is optional, so "*".
			return []Request{{Action: "dax:DescribeClusters", Resource: "*"}}, nil
		}
	case "sts":
		if c.Operation == "GetCallerIdentity" {
			// "No permissions are required to perform this operation."
			return nil, nil
		}
	}
	return nil, fmt.Errorf("awsrec: %v: no IAM mapping for this operation; add one to awsrec.Requests", c)
}

type mapper struct{ account, region string }

// logs maps CloudWatch Logs calls (JSON 1.1, Logs_20140328.<Operation>).
// FilterLogEvents is authorized on its log group (iam-data's log-group
// resource type: arn:...:log-group:NAME); logGroupIdentifier may be the
// group's name or ARN.
func (m mapper) logs(c Call) ([]Request, error) {
	switch c.Operation {
	case "FilterLogEvents":
		group := str(c.Body["logGroupName"])
		if id := str(c.Body["logGroupIdentifier"]); group == "" && id != "" {
			if _, name, ok := strings.Cut(id, ":log-group:"); ok {
				id = strings.TrimSuffix(name, ":*")
			}
			group = id
		}
		if group == "" {
			return nil, fmt.Errorf("awsrec: %v: no log group", c)
		}
		return []Request{req("logs:FilterLogEvents", fmt.Sprintf("arn:aws:logs:%s:%s:log-group:%s", m.region, m.account, group))}, nil
	}
	return nil, fmt.Errorf("awsrec: %v: no IAM mapping for this operation; add one to awsrec.Requests", c)
}

func (m mapper) table(name string) string {
	return fmt.Sprintf("arn:aws:dynamodb:%s:%s:table/%s", m.region, m.account, name)
}

// tableSuffix rebuilds a DynamoDB ARN (a stream's or an export's) in the
// mapper's account and region from its part after "table/".
func (m mapper) tableSuffix(arn string) (string, error) {
	_, rest, ok := strings.Cut(arn, ":table/")
	if !ok {
		return "", fmt.Errorf("awsrec: %q is not a DynamoDB table ARN", arn)
	}
	return m.table(rest), nil
}

func str(v any) string { s, _ := v.(string); return s }

func req(action, resource string) Request { return Request{Action: action, Resource: resource} }

func (m mapper) dynamodb(c Call) ([]Request, error) {
	b := c.Body
	op := c.Operation
	switch op {
	case "GetItem", "PutItem", "UpdateItem", "DeleteItem", "DescribeTable", "DescribeContinuousBackups",
		"UpdateContinuousBackups", "DescribeTimeToLive", "CreateTable", "DeleteTable", "UpdateTable":
		return []Request{req("dynamodb:"+op, m.table(str(b["TableName"])))}, nil
	case "Query", "Scan":
		res := m.table(str(b["TableName"]))
		if ix := str(b["IndexName"]); ix != "" {
			res += "/index/" + ix
		}
		return []Request{req("dynamodb:"+op, res)}, nil
	case "BatchGetItem", "BatchWriteItem":
		items, _ := b["RequestItems"].(map[string]any)
		names := make([]string, 0, len(items))
		for name := range items {
			names = append(names, name)
		}
		sort.Strings(names)
		var out []Request
		for _, name := range names {
			out = append(out, req("dynamodb:"+op, m.table(name)))
		}
		return out, nil
	case "TransactWriteItems", "TransactGetItems":
		// Transactions are authorized as their parts.
		parts := map[string]string{"Put": "PutItem", "Update": "UpdateItem", "Delete": "DeleteItem", "ConditionCheck": "ConditionCheckItem", "Get": "GetItem"}
		items, _ := b["TransactItems"].([]any)
		var out []Request
		for _, it := range items {
			for k, v := range it.(map[string]any) {
				out = append(out, req("dynamodb:"+parts[k], m.table(str(v.(map[string]any)["TableName"]))))
			}
		}
		return out, nil
	case "ListTables", "ListExports":
		return []Request{req("dynamodb:"+op, "*")}, nil
	case "RestoreTableToPointInTime":
		// "DynamoDB RestoreTableToPointInTime permissions are necessary on
		// the source table, and DynamoDB read and write permissions on the
		// target table are necessary for restore functionality." The
		// Service Authorization Reference lists the target's as the
		// action's dependent actions.
		out := []Request{req("dynamodb:RestoreTableToPointInTime", m.table(str(b["SourceTableName"])))}
		target := m.table(str(b["TargetTableName"]))
		for _, a := range []string{"BatchWriteItem", "DeleteItem", "GetItem", "PutItem", "Query", "Scan", "UpdateItem"} {
			out = append(out, req("dynamodb:"+a, target))
		}
		return out, nil
	case "ExportTableToPointInTime":
		table, err := m.tableSuffix(str(b["TableArn"]))
		if err != nil {
			return nil, err
		}
		// DynamoDB writes the export with the caller's permissions:
		// s3:PutObject, s3:AbortMultipartUpload and s3:PutObjectAcl on the
		// destination ("Requesting a table export in DynamoDB").
		prefix := strings.Trim(str(b["S3Prefix"]), "/")
		obj := "arn:aws:s3:::" + str(b["S3Bucket"]) + "/"
		if prefix != "" {
			obj += prefix + "/"
		}
		obj += "AWSDynamoDB/*"
		return []Request{
			req("dynamodb:ExportTableToPointInTime", table),
			req("s3:PutObject", obj), req("s3:AbortMultipartUpload", obj), req("s3:PutObjectAcl", obj),
		}, nil
	case "DescribeExport":
		arn, err := m.tableSuffix(str(b["ExportArn"]))
		if err != nil {
			return nil, err
		}
		return []Request{req("dynamodb:DescribeExport", arn)}, nil
	}
	return nil, fmt.Errorf("awsrec: %v: no IAM mapping for this DynamoDB operation; add one to awsrec.Requests", c)
}

func (m mapper) streams(c Call) ([]Request, error) {
	switch c.Operation {
	case "ListStreams":
		return []Request{req("dynamodb:ListStreams", "*")}, nil
	case "DescribeStream", "GetShardIterator":
		arn, err := m.tableSuffix(str(c.Body["StreamArn"]))
		if err != nil {
			return nil, err
		}
		return []Request{req("dynamodb:"+c.Operation, arn)}, nil
	case "GetRecords":
		// The shard iterator is opaque; DynamoDB Local's embeds the
		// stream ARN, which GetRecords is authorized on.
		it := str(c.Body["ShardIterator"])
		i := strings.Index(it, "arn:")
		if i < 0 {
			return nil, fmt.Errorf("awsrec: %v: no stream ARN in shard iterator %q", c, it)
		}
		arn := it[i:]
		if j := strings.IndexAny(arn, "|"); j >= 0 {
			arn = arn[:j]
		}
		res, err := m.tableSuffix(arn)
		if err != nil {
			return nil, err
		}
		return []Request{req("dynamodb:GetRecords", res)}, nil
	}
	return nil, fmt.Errorf("awsrec: %v: no IAM mapping for this DynamoDB Streams operation", c)
}

func (m mapper) s3(c Call) ([]Request, error) {
	bucket, key := splitPath(c.Path)
	bucketARN := "arn:aws:s3:::" + bucket
	obj := bucketARN + "/" + key
	switch c.Operation {
	case "ListObjectsV2", "ListObjects":
		// s3:prefix is the request's prefix, "" when it has none.
		return []Request{{Action: "s3:ListBucket", Resource: bucketARN, Context: map[string][]string{"s3:prefix": {c.Query.Get("prefix")}}}}, nil
	case "HeadBucket":
		return []Request{req("s3:ListBucket", bucketARN)}, nil
	case "GetBucketLocation":
		return []Request{req("s3:GetBucketLocation", bucketARN)}, nil
	case "GetObject", "HeadObject":
		return []Request{req("s3:GetObject", obj)}, nil
	case "PutObject", "CreateMultipartUpload", "UploadPart", "CompleteMultipartUpload":
		return []Request{req("s3:PutObject", obj)}, nil
	case "AbortMultipartUpload":
		return []Request{req("s3:AbortMultipartUpload", obj)}, nil
	case "DeleteObject":
		return []Request{req("s3:DeleteObject", obj)}, nil
	case "CreateBucket":
		return []Request{req("s3:CreateBucket", bucketARN)}, nil
	}
	return nil, fmt.Errorf("awsrec: %v: no IAM mapping for this S3 operation", c)
}

func (m mapper) ssm(c Call) ([]Request, error) {
	param := func(name string) string {
		return fmt.Sprintf("arn:aws:ssm:%s:%s:parameter/%s", m.region, m.account, strings.TrimPrefix(name, "/"))
	}
	switch c.Operation {
	case "GetParameter", "PutParameter", "DeleteParameter", "GetParameterHistory":
		return []Request{req("ssm:"+c.Operation, param(str(c.Body["Name"])))}, nil
	}
	return nil, fmt.Errorf("awsrec: %v: no IAM mapping for this SSM operation", c)
}

// appconfigOperation names the AppConfig control-plane operations
// `rewind readonly --flags` makes, from their REST paths.
func appconfigOperation(c Call) string {
	seg := strings.Split(strings.Trim(c.Path, "/"), "/")
	get := c.Method == http.MethodGet
	switch {
	case len(seg) == 1 && seg[0] == "applications" && get:
		return "ListApplications"
	case len(seg) == 3 && seg[2] == "environments" && get:
		return "ListEnvironments"
	case len(seg) == 3 && seg[2] == "configurationprofiles" && get:
		return "ListConfigurationProfiles"
	case len(seg) == 5 && seg[4] == "hostedconfigurationversions" && get:
		return "ListHostedConfigurationVersions"
	case len(seg) == 5 && seg[4] == "hostedconfigurationversions" && c.Method == http.MethodPost:
		return "CreateHostedConfigurationVersion"
	case len(seg) == 6 && seg[4] == "hostedconfigurationversions" && get:
		return "GetHostedConfigurationVersion"
	case len(seg) == 5 && seg[4] == "deployments" && get:
		return "ListDeployments"
	case len(seg) == 5 && seg[4] == "deployments" && c.Method == http.MethodPost:
		return "StartDeployment"
	}
	return c.Method + " " + c.Path
}

// appconfig maps AppConfig calls as the Service Authorization Reference
// lists their resource types: StartDeployment needs the application, the
// environment, the configuration profile and the deployment strategy, so
// it is one request per resource.
func (m mapper) appconfig(c Call) ([]Request, error) {
	arn := func(rest string) string { return fmt.Sprintf("arn:aws:appconfig:%s:%s:%s", m.region, m.account, rest) }
	seg := strings.Split(strings.Trim(c.Path, "/"), "/")
	op := "appconfig:" + c.Operation
	switch c.Operation {
	case "ListApplications":
		return []Request{req(op, "*")}, nil
	case "ListEnvironments", "ListConfigurationProfiles":
		return []Request{req(op, arn("application/"+seg[1]))}, nil
	case "ListHostedConfigurationVersions", "CreateHostedConfigurationVersion":
		return []Request{req(op, arn("application/"+seg[1])), req(op, arn("application/"+seg[1]+"/configurationprofile/"+seg[3]))}, nil
	case "GetHostedConfigurationVersion":
		// The catalogue gives the hostedconfigurationversion the profile's
		// ARN pattern (application/ID/configurationprofile/ID), so that
		// ARN matches two of the action's resource types and iam-simulate
		// refuses to evaluate it ("multiple.resource.types"). The
		// application is checked; the operator policy grants the profile
		// in the same statement as the application.
		return []Request{req(op, arn("application/"+seg[1]))}, nil
	case "ListDeployments":
		return []Request{req(op, arn("application/"+seg[1])), req(op, arn("application/"+seg[1]+"/environment/"+seg[3]))}, nil
	case "StartDeployment":
		return []Request{req(op, arn("application/"+seg[1])), req(op, arn("application/"+seg[1]+"/environment/"+seg[3])),
			req(op, arn("application/"+seg[1]+"/configurationprofile/"+str(c.Body["ConfigurationProfileId"]))),
			req(op, arn("deploymentstrategy/"+str(c.Body["DeploymentStrategyId"])))}, nil
	}
	return nil, fmt.Errorf("awsrec: %v: no IAM mapping for this AppConfig operation", c)
}

func (m mapper) iam(c Call) ([]Request, error) {
	f := c.Form
	policyARN := func() (string, error) {
		arn := f.Get("PolicyArn")
		_, rest, ok := strings.Cut(arn, ":policy/")
		if !ok {
			return "", fmt.Errorf("awsrec: %v: PolicyArn %q", c, arn)
		}
		return fmt.Sprintf("arn:aws:iam::%s:policy/%s", m.account, rest), nil
	}
	role := func() string {
		path := f.Get("Path")
		if path == "" {
			path = "/"
		}
		return fmt.Sprintf("arn:aws:iam::%s:role%s%s", m.account, path, f.Get("RoleName"))
	}
	switch op := c.Operation; op {
	case "CreatePolicy":
		path := f.Get("Path")
		if path == "" {
			path = "/"
		}
		return []Request{req("iam:CreatePolicy", fmt.Sprintf("arn:aws:iam::%s:policy%s%s", m.account, path, f.Get("PolicyName")))}, nil
	case "GetPolicy", "GetPolicyVersion", "CreatePolicyVersion", "DeletePolicyVersion", "ListPolicyVersions", "ListEntitiesForPolicy", "DeletePolicy":
		arn, err := policyARN()
		if err != nil {
			return nil, err
		}
		return []Request{req("iam:"+op, arn)}, nil
	case "AttachRolePolicy", "DetachRolePolicy":
		arn, err := policyARN()
		if err != nil {
			return nil, err
		}
		return []Request{{Action: "iam:" + op, Resource: role(), Context: map[string][]string{"iam:PolicyARN": {arn}}}}, nil
	case "ListPolicyTags", "TagPolicy", "UntagPolicy":
		arn, err := policyARN()
		if err != nil {
			return nil, err
		}
		return []Request{req("iam:"+op, arn)}, nil
	case "ListAttachedRolePolicies", "GetRole", "PutRolePolicy", "DeleteRolePolicy", "GetRolePolicy", "ListRolePolicies":
		return []Request{req("iam:"+op, role())}, nil
	case "SimulatePrincipalPolicy":
		// Authorized on the principal whose policies are simulated.
		return []Request{req("iam:SimulatePrincipalPolicy", f.Get("PolicySourceArn"))}, nil
	}
	return nil, fmt.Errorf("awsrec: %v: no IAM mapping for this IAM operation", c)
}
