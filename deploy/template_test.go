package deploy_test

// Checks of template.yaml, the SAM template of the capture stage. The
// resources are found by type and by how they are wired together (the
// bucket is whatever REWIND_BUCKET refers to), not by logical ID. Every
// check is a function returning an error, so TestChecksCatchMutations can
// prove that each one fails when the property it guards is broken.
// cfn-lint, when installed, checks property names and types against the
// AWS resource schemas (TestCFNLint).

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ddbrewind/rewind"
	"github.com/ddbrewind/rewind/streamhandler"
)

func (tpl template) function() (string, map[string]any, error) {
	name, err := tpl.one("AWS::Serverless::Function")
	if err != nil {
		return "", nil, err
	}
	return name, tpl.props(name), nil
}

func (tpl template) envVar(name string) any {
	_, fn, err := tpl.function()
	if err != nil {
		return nil
	}
	return at(fn, "Environment", "Variables", name)
}

func (tpl template) auditTable() (string, error) {
	name, err := tpl.refTo(tpl.envVar("REWIND_AUDIT_TABLE"), "AWS::DynamoDB::Table")
	if err != nil {
		return "", fmt.Errorf("REWIND_AUDIT_TABLE %w", err)
	}
	return name, nil
}

func (tpl template) bucket() (string, error) {
	name, err := tpl.refTo(tpl.envVar("REWIND_BUCKET"), "AWS::S3::Bucket")
	if err != nil {
		return "", fmt.Errorf("REWIND_BUCKET %w", err)
	}
	return name, nil
}

func (tpl template) eventSourceMapping() (string, map[string]any, error) {
	name, err := tpl.one("AWS::Lambda::EventSourceMapping")
	if err != nil {
		return "", nil, err
	}
	return name, tpl.props(name), nil
}

// refTo is {"Ref": name}.
func refTo(name string) any { return map[string]any{"Ref": name} }

func (tpl template) failureBucket() (string, error) {
	_, esm, err := tpl.eventSourceMapping()
	if err != nil {
		return "", err
	}
	name, err := tpl.arnOf(at(esm, "DestinationConfig", "OnFailure", "Destination"), "AWS::S3::Bucket")
	if err != nil {
		return "", fmt.Errorf("DestinationConfig.OnFailure.Destination %w", err)
	}
	return name, nil
}

func (tpl template) role() (string, error) {
	_, fn, err := tpl.function()
	if err != nil {
		return "", err
	}
	name, err := tpl.arnOf(fn["Role"], "AWS::IAM::Role")
	if err != nil {
		return "", fmt.Errorf("function Role %w", err)
	}
	return name, nil
}

// boundedParam checks that v is a Ref to the Number parameter want, whose
// Default is def and whose MinValue and MaxValue exist and lie within
// [lo, hi].
func (tpl template) boundedParam(v any, want string, def, lo, hi int) error {
	name, ok := refOf(v)
	if !ok {
		return fmt.Errorf("is %s, want a Ref to parameter %s", show(v), want)
	}
	if name != want {
		return fmt.Errorf("refers to %s, want parameter %s", name, want)
	}
	p := asMap(at(tpl["Parameters"], name))
	if p == nil {
		return fmt.Errorf("parameter %s is not declared", name)
	}
	if p["Type"] != "Number" {
		return fmt.Errorf("parameter %s has Type %v, want Number", name, p["Type"])
	}
	if d, ok := toInt(p["Default"]); !ok || d != def {
		return fmt.Errorf("parameter %s has Default %v, want %d", name, p["Default"], def)
	}
	minV, okMin := toInt(p["MinValue"])
	maxV, okMax := toInt(p["MaxValue"])
	switch {
	case !okMin || !okMax:
		return fmt.Errorf("parameter %s must set MinValue and MaxValue (got %v, %v)", name, p["MinValue"], p["MaxValue"])
	case minV < lo:
		return fmt.Errorf("parameter %s allows %d, below %d", name, minV, lo)
	case maxV > hi:
		return fmt.Errorf("parameter %s allows %d, above %d", name, maxV, hi)
	}
	return nil
}

type check struct {
	name string
	fn   func(template) error
}

func runChecks(t *testing.T, checks []check) {
	tpl := loadTemplate(t)
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if err := c.fn(tpl); err != nil {
				t.Error(err)
			}
		})
	}
}

func esmChecks() []check {
	esmProp := func(tpl template, key string) (any, error) {
		_, esm, err := tpl.eventSourceMapping()
		if err != nil {
			return nil, err
		}
		return esm[key], nil
	}
	equal := func(key string, want any) func(template) error {
		return func(tpl template) error {
			v, err := esmProp(tpl, key)
			if err != nil {
				return err
			}
			if v != want {
				return fmt.Errorf("%s is %s, want %v", key, show(v), want)
			}
			return nil
		}
	}
	param := func(key string, def, lo, hi int) func(template) error {
		return func(tpl template) error {
			v, err := esmProp(tpl, key)
			if err != nil {
				return err
			}
			if err := tpl.boundedParam(v, key, def, lo, hi); err != nil {
				return fmt.Errorf("%s %w", key, err)
			}
			return nil
		}
	}
	return []check{
		{"EventSourceArn is the SourceStreamArn parameter", func(tpl template) error {
			v, err := esmProp(tpl, "EventSourceArn")
			if err != nil {
				return err
			}
			if name, ok := refOf(v); !ok || name != "SourceStreamArn" {
				return fmt.Errorf("EventSourceArn is %s, want Ref SourceStreamArn", show(v))
			}
			return nil
		}},
		{"FunctionName is the capture function", func(tpl template) error {
			v, err := esmProp(tpl, "FunctionName")
			if err != nil {
				return err
			}
			_, err = tpl.refTo(v, "AWS::Serverless::Function")
			if err != nil {
				return fmt.Errorf("FunctionName %w", err)
			}
			return nil
		}},
		// TRIM_HORIZON: a first deploy captures what the stream still holds.
		{"StartingPosition is TRIM_HORIZON", equal("StartingPosition", "TRIM_HORIZON")},
		{"BisectBatchOnFunctionError is true", equal("BisectBatchOnFunctionError", true)},
		// One batch per shard at a time keeps one item's changes in order.
		{"ParallelizationFactor is 1", equal("ParallelizationFactor", 1)},
		{"FunctionResponseTypes has ReportBatchItemFailures", func(tpl template) error {
			v, err := esmProp(tpl, "FunctionResponseTypes")
			if err != nil {
				return err
			}
			if !slices.Contains(asList(v), any("ReportBatchItemFailures")) {
				return fmt.Errorf("FunctionResponseTypes is %s, want it to contain ReportBatchItemFailures", show(v))
			}
			return nil
		}},
		{"BatchSize from parameter", param("BatchSize", 100, 1, 10000)},
		{"MaximumBatchingWindowInSeconds from parameter", param("MaximumBatchingWindowInSeconds", 1, 0, 300)},
		// -1 would retry forever and block the shard behind one bad record.
		{"MaximumRetryAttempts bounded", param("MaximumRetryAttempts", 10, 0, 10000)},
		// -1 would keep records until the stream drops them, unreported.
		{"MaximumRecordAgeInSeconds bounded", param("MaximumRecordAgeInSeconds", 86400, 60, 604800)},
		// An S3 destination receives the whole batch, not only its
		// position in a stream that keeps it 24 hours.
		{"OnFailure destination is a retained, encrypted, private S3 bucket", func(tpl template) error {
			b, err := tpl.failureBucket()
			if err != nil {
				return err
			}
			if capture, _ := tpl.bucket(); b == capture {
				return fmt.Errorf("failure bucket %s is the capture bucket; keep failure records apart", b)
			}
			r := asMap(at(map[string]any(tpl), "Resources", b))
			if r["DeletionPolicy"] != "Retain" || r["UpdateReplacePolicy"] != "Retain" {
				return fmt.Errorf("failure bucket %s: DeletionPolicy %v, UpdateReplacePolicy %v; want Retain (its objects are changes nothing else holds)", b, r["DeletionPolicy"], r["UpdateReplacePolicy"])
			}
			p := tpl.props(b)
			if at(p, "BucketEncryption", "ServerSideEncryptionConfiguration", 0, "ServerSideEncryptionByDefault", "SSEAlgorithm") == nil {
				return fmt.Errorf("failure bucket %s has no default encryption", b)
			}
			for _, k := range []string{"BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"} {
				if at(p, "PublicAccessBlockConfiguration", k) != true {
					return fmt.Errorf("failure bucket %s: PublicAccessBlockConfiguration.%s is not true", b, k)
				}
			}
			return nil
		}},
		{"failure records expire after FailureRetentionDays (default 35, the PITR window)", func(tpl template) error {
			b, err := tpl.failureBucket()
			if err != nil {
				return err
			}
			if d, _ := toInt(at(map[string]any(tpl), "Parameters", "FailureRetentionDays", "Default")); d != 35 {
				return fmt.Errorf("parameter FailureRetentionDays defaults to %v, want 35 (the longest PITR window)", d)
			}
			for _, r := range asList(at(tpl.props(b), "LifecycleConfiguration", "Rules")) {
				if at(r, "Status") == "Enabled" && at(r, "Prefix") == "aws/lambda/" && show(at(r, "ExpirationInDays")) == show(refTo("FailureRetentionDays")) {
					return nil
				}
			}
			return fmt.Errorf("failure bucket %s: no enabled lifecycle rule expiring aws/lambda/ after Ref FailureRetentionDays", b)
		}},
		{"alarms on Errors, IteratorAge and new failure records, notifying AlarmTopicArn when given", func(tpl template) error {
			fn, _, err := tpl.function()
			if err != nil {
				return err
			}
			b, err := tpl.failureBucket()
			if err != nil {
				return err
			}
			filter := ""
			for _, m := range asList(at(tpl.props(b), "MetricsConfigurations")) {
				if at(m, "Prefix") == "aws/lambda/" {
					filter, _ = at(m, "Id").(string)
				}
			}
			if filter == "" {
				return fmt.Errorf("failure bucket %s: no request metrics filter on aws/lambda/ (FailureRecordAlarm watches its PutRequests)", b)
			}
			found := map[string]bool{}
			for name, r := range asMap(at(map[string]any(tpl), "Resources")) {
				if at(r, "Type") != "AWS::CloudWatch::Alarm" {
					continue
				}
				p := tpl.props(name)
				dims := map[string]string{}
				for _, d := range asList(p["Dimensions"]) {
					dims[fmt.Sprint(at(d, "Name"))] = show(at(d, "Value"))
				}
				metric := fmt.Sprint(p["Namespace"], " ", p["MetricName"])
				switch {
				case metric == "AWS/Lambda Errors" && dims["FunctionName"] == show(refTo(fn)):
				case metric == "AWS/Lambda IteratorAge" && dims["FunctionName"] == show(refTo(fn)):
					if show(p["Threshold"]) != show(refTo("IteratorAgeAlarmMilliseconds")) {
						return fmt.Errorf("%s: Threshold %s, want Ref IteratorAgeAlarmMilliseconds", name, show(p["Threshold"]))
					}
				case metric == "AWS/S3 PutRequests" && dims["BucketName"] == show(refTo(b)) && dims["FilterId"] == show(filter):
				default:
					continue
				}
				want := map[string]any{"Fn::If": []any{"HasAlarmTopic", []any{refTo("AlarmTopicArn")}, refTo("AWS::NoValue")}}
				if show(p["AlarmActions"]) != show(want) {
					return fmt.Errorf("%s: AlarmActions %s, want %s", name, show(p["AlarmActions"]), show(want))
				}
				if p["TreatMissingData"] != "notBreaching" {
					return fmt.Errorf("%s: TreatMissingData %v, want notBreaching (no data is no failure)", name, p["TreatMissingData"])
				}
				found[metric] = true
			}
			for _, m := range []string{"AWS/Lambda Errors", "AWS/Lambda IteratorAge", "AWS/S3 PutRequests"} {
				if !found[m] {
					return fmt.Errorf("no alarm on %s", m)
				}
			}
			cond := at(map[string]any(tpl), "Conditions", "HasAlarmTopic")
			if show(cond) != show(map[string]any{"Fn::Not": []any{map[string]any{"Fn::Equals": []any{refTo("AlarmTopicArn"), ""}}}}) {
				return fmt.Errorf("Conditions.HasAlarmTopic is %s, want AlarmTopicArn not empty", show(cond))
			}
			return nil
		}},
		{"function has no SAM stream event", func(tpl template) error {
			name, fn, err := tpl.function()
			if err != nil {
				return err
			}
			for ev, def := range asMap(fn["Events"]) {
				switch typ := at(def, "Type"); typ {
				case "DynamoDB", "Kinesis":
					return fmt.Errorf("%s has a SAM %v event %s; use the explicit AWS::Lambda::EventSourceMapping (goformation v7 drops FunctionResponseTypes from SAM stream events)", name, typ, ev)
				}
			}
			return nil
		}},
	}
}

func TestEventSourceMapping(t *testing.T) { runChecks(t, esmChecks()) }

func auditTableChecks() []check {
	prop := func(tpl template, path ...any) (string, any, error) {
		name, err := tpl.auditTable()
		if err != nil {
			return "", nil, err
		}
		return name, at(tpl.props(name), path...), nil
	}
	equal := func(want any, path ...any) func(template) error {
		return func(tpl template) error {
			name, v, err := prop(tpl, path...)
			if err != nil {
				return err
			}
			if v != want {
				return fmt.Errorf("%s: %v is %s, want %v", name, path, show(v), want)
			}
			return nil
		}
	}
	keySchema := func(v any) string {
		var parts []string
		for _, k := range asList(v) {
			parts = append(parts, fmt.Sprintf("%v %v", at(k, "AttributeName"), at(k, "KeyType")))
		}
		return strings.Join(parts, ", ")
	}
	return []check{
		{"on-demand billing", equal("PAY_PER_REQUEST", "BillingMode")},
		{"key pk HASH, sk RANGE", func(tpl template) error {
			name, v, err := prop(tpl, "KeySchema")
			if err != nil {
				return err
			}
			if got, want := keySchema(v), "pk HASH, sk RANGE"; got != want {
				return fmt.Errorf("%s: KeySchema is %q, want %q", name, got, want)
			}
			return nil
		}},
		{"key attributes are strings", func(tpl template) error {
			name, v, err := prop(tpl, "AttributeDefinitions")
			if err != nil {
				return err
			}
			types := map[any]any{}
			for _, d := range asList(v) {
				types[at(d, "AttributeName")] = at(d, "AttributeType")
			}
			for _, attr := range []string{"pk", "sk", "item", "hour"} {
				if types[attr] != "S" {
					return fmt.Errorf("%s: attribute %s has type %v, want S", name, attr, types[attr])
				}
			}
			return nil
		}},
		{"GSI item-history on item, sk with all attributes", func(tpl template) error {
			name, v, err := prop(tpl, "GlobalSecondaryIndexes")
			if err != nil {
				return err
			}
			for _, gsi := range asList(v) {
				if at(gsi, "IndexName") != streamhandler.AuditItemHistoryIndex {
					continue
				}
				if got, want := keySchema(at(gsi, "KeySchema")), "item HASH, sk RANGE"; got != want {
					return fmt.Errorf("%s: item-history KeySchema is %q, want %q", name, got, want)
				}
				if p := at(gsi, "Projection", "ProjectionType"); p != "ALL" {
					return fmt.Errorf("%s: item-history projects %v, want ALL", name, p)
				}
				return nil
			}
			return fmt.Errorf("%s has no GSI named item-history", name)
		}},
		{"GSI hour on hour, sk with all attributes", func(tpl template) error {
			name, v, err := prop(tpl, "GlobalSecondaryIndexes")
			if err != nil {
				return err
			}
			for _, gsi := range asList(v) {
				if at(gsi, "IndexName") != streamhandler.AuditHourIndex {
					continue
				}
				if got, want := keySchema(at(gsi, "KeySchema")), "hour HASH, sk RANGE"; got != want {
					return fmt.Errorf("%s: hour KeySchema is %q, want %q", name, got, want)
				}
				if p := at(gsi, "Projection", "ProjectionType"); p != "ALL" {
					return fmt.Errorf("%s: hour projects %v, want ALL (the reader rebuilds events from it)", name, p)
				}
				return nil
			}
			return fmt.Errorf("%s has no GSI named %s: rewind query --audit-table without --tenants needs it", name, streamhandler.AuditHourIndex)
		}},
		{"TTL on expiresAt", func(tpl template) error {
			name, v, err := prop(tpl, "TimeToLiveSpecification")
			if err != nil {
				return err
			}
			if at(v, "AttributeName") != "expiresAt" || at(v, "Enabled") != true {
				return fmt.Errorf("%s: TimeToLiveSpecification is %v, want expiresAt enabled", name, v)
			}
			return nil
		}},
		{"point-in-time recovery", equal(true, "PointInTimeRecoverySpecification", "PointInTimeRecoveryEnabled")},
		{"encryption at rest", equal(true, "SSESpecification", "SSEEnabled")},
		{"retained on stack deletion and replacement", func(tpl template) error {
			name, err := tpl.auditTable()
			if err != nil {
				return err
			}
			return retained(tpl, name)
		}},
	}
}

func retained(tpl template, name string) error {
	r := asMap(tpl.resources()[name])
	for _, k := range []string{"DeletionPolicy", "UpdateReplacePolicy"} {
		if r[k] != "Retain" {
			return fmt.Errorf("%s: %s is %v, want Retain", name, k, r[k])
		}
	}
	return nil
}

func TestAuditTable(t *testing.T) { runChecks(t, auditTableChecks()) }

func bucketChecks() []check {
	props := func(tpl template) (string, map[string]any, error) {
		name, err := tpl.bucket()
		if err != nil {
			return "", nil, err
		}
		return name, tpl.props(name), nil
	}
	return []check{
		{"default encryption", func(tpl template) error {
			name, p, err := props(tpl)
			if err != nil {
				return err
			}
			rules := asList(at(p, "BucketEncryption", "ServerSideEncryptionConfiguration"))
			if len(rules) == 0 {
				return fmt.Errorf("%s has no BucketEncryption", name)
			}
			for _, r := range rules {
				switch alg := at(r, "ServerSideEncryptionByDefault", "SSEAlgorithm"); alg {
				case "AES256", "aws:kms", "aws:kms:dsse":
				default:
					return fmt.Errorf("%s: SSEAlgorithm is %v, want AES256 or aws:kms", name, alg)
				}
			}
			return nil
		}},
		{"public access blocked", func(tpl template) error {
			name, p, err := props(tpl)
			if err != nil {
				return err
			}
			for _, flag := range []string{"BlockPublicAcls", "BlockPublicPolicy", "IgnorePublicAcls", "RestrictPublicBuckets"} {
				if v := at(p, "PublicAccessBlockConfiguration", flag); v != true {
					return fmt.Errorf("%s: PublicAccessBlockConfiguration.%s is %v, want true", name, flag, v)
				}
			}
			return nil
		}},
		{"ACLs disabled", func(tpl template) error {
			name, p, err := props(tpl)
			if err != nil {
				return err
			}
			if v := at(p, "OwnershipControls", "Rules", 0, "ObjectOwnership"); v != "BucketOwnerEnforced" {
				return fmt.Errorf("%s: ObjectOwnership is %v, want BucketOwnerEnforced", name, v)
			}
			return nil
		}},
		{"Parquet objects expire", func(tpl template) error {
			name, p, err := props(tpl)
			if err != nil {
				return err
			}
			for _, r := range asList(at(p, "LifecycleConfiguration", "Rules")) {
				prefix, _ := subOf(at(r, "Prefix"))
				if at(r, "Status") != "Enabled" || prefix != "${ParquetPrefix}/" {
					continue
				}
				days := at(r, "ExpirationInDays")
				if n, ok := toInt(days); ok && n > 0 {
					return nil
				}
				return tpl.boundedParam(days, "ParquetRetentionDays", 400, 1, 1<<31-1)
			}
			return fmt.Errorf(`%s has no enabled lifecycle rule for Prefix !Sub "${ParquetPrefix}/"`, name)
		}},
		{"incomplete multipart uploads aborted", func(tpl template) error {
			name, p, err := props(tpl)
			if err != nil {
				return err
			}
			for _, r := range asList(at(p, "LifecycleConfiguration", "Rules")) {
				d, ok := toInt(at(r, "AbortIncompleteMultipartUpload", "DaysAfterInitiation"))
				if at(r, "Status") == "Enabled" && ok && d > 0 {
					return nil
				}
			}
			return fmt.Errorf("%s has no enabled rule aborting incomplete multipart uploads", name)
		}},
		{"retained on stack deletion", func(tpl template) error {
			name, err := tpl.bucket()
			if err != nil {
				return err
			}
			return retained(tpl, name)
		}},
		{"policy denies requests without TLS", func(tpl template) error {
			bucket, err := tpl.bucket()
			if err != nil {
				return err
			}
			for _, pol := range tpl.ofType("AWS::S3::BucketPolicy") {
				p := tpl.props(pol)
				if ref, _ := refOf(p["Bucket"]); ref != bucket {
					continue
				}
				for _, s := range asList(at(p, "PolicyDocument", "Statement")) {
					tls := at(s, "Condition", "Bool", "aws:SecureTransport")
					var onBucket, onObjects bool
					for _, r := range asList(at(s, "Resource")) {
						if res, attr, _ := getAttOf(r); res == bucket && attr == "Arn" {
							onBucket = true
						}
						if sub, _ := subOf(r); sub == "${"+bucket+".Arn}/*" {
							onObjects = true
						}
					}
					if at(s, "Effect") == "Deny" && at(s, "Principal") == "*" &&
						(tls == "false" || tls == false) &&
						slices.Contains(asList(at(s, "Action")), any("s3:*")) &&
						onBucket && onObjects {
						return nil
					}
				}
			}
			return fmt.Errorf("no bucket policy on %s denies s3:* on the bucket and its objects when aws:SecureTransport is false", bucket)
		}},
	}
}

func TestBucket(t *testing.T) { runChecks(t, bucketChecks()) }

func functionChecks() []check {
	equal := func(key string, want any) func(template) error {
		return func(tpl template) error {
			name, fn, err := tpl.function()
			if err != nil {
				return err
			}
			if fn[key] != want {
				return fmt.Errorf("%s: %s is %s, want %v", name, key, show(fn[key]), want)
			}
			return nil
		}
	}
	envRef := func(variable, param string) func(template) error {
		return func(tpl template) error {
			v := tpl.envVar(variable)
			// An optional variable is !If [Cond, !Ref P, !Ref AWS::NoValue].
			if fn, arg, ok := intrinsic(v); ok && fn == "Fn::If" {
				if l := asList(arg); len(l) == 3 {
					if no, _ := refOf(l[2]); no == "AWS::NoValue" {
						v = l[1]
					}
				}
			}
			if got, ok := refOf(v); !ok || got != param {
				return fmt.Errorf("%s is %s, want Ref %s", variable, show(v), param)
			}
			return nil
		}
	}
	return []check{
		{"runtime provided.al2023", equal("Runtime", "provided.al2023")},
		{"handler bootstrap", equal("Handler", "bootstrap")},
		{"arm64", func(tpl template) error {
			name, fn, err := tpl.function()
			if err != nil {
				return err
			}
			if a := asList(fn["Architectures"]); len(a) != 1 || a[0] != "arm64" {
				return fmt.Errorf("%s: Architectures is %v, want [arm64] (scripts/build-lambda.sh builds GOARCH=arm64)", name, fn["Architectures"])
			}
			return nil
		}},
		{"CodeUri is the build output", func(tpl template) error {
			name, fn, err := tpl.function()
			if err != nil {
				return err
			}
			uri, _ := fn["CodeUri"].(string)
			// SAM resolves CodeUri relative to the template's directory.
			switch filepath.ToSlash(filepath.Join("deploy", uri)) {
			case "dist/streamhandler", "dist/streamhandler.zip":
				return nil
			}
			return fmt.Errorf("%s: CodeUri is %v, want ../dist/streamhandler/ or ../dist/streamhandler.zip", name, fn["CodeUri"])
		}},
		{"timeout and memory in range", func(tpl template) error {
			name, fn, err := tpl.function()
			if err != nil {
				return err
			}
			timeout, ok1 := toInt(fn["Timeout"])
			mem, ok2 := toInt(fn["MemorySize"])
			// Under 30 s a throttled batch would time out before the SDK's
			// retries give up; Lambda's limits are 900 s and 128-10240 MB.
			if !ok1 || timeout < 30 || timeout > 900 {
				return fmt.Errorf("%s: Timeout is %v, want 30 to 900", name, fn["Timeout"])
			}
			if !ok2 || mem < 128 || mem > 10240 {
				return fmt.Errorf("%s: MemorySize is %v, want 128 to 10240", name, fn["MemorySize"])
			}
			return nil
		}},
		{"JSON logs", func(tpl template) error {
			name, fn, err := tpl.function()
			if err != nil {
				return err
			}
			if f := at(fn, "LoggingConfig", "LogFormat"); f != "JSON" {
				return fmt.Errorf("%s: LoggingConfig.LogFormat is %v, want JSON", name, f)
			}
			return nil
		}},
		{"no reserved environment variables", func(tpl template) error {
			name, fn, err := tpl.function()
			if err != nil {
				return err
			}
			for k := range asMap(at(fn, "Environment", "Variables")) {
				// Lambda rejects AWS_* keys it reserves (AWS_LAMBDA_LOG_FORMAT
				// among them: it comes from LoggingConfig).
				if strings.HasPrefix(k, "AWS_") {
					return fmt.Errorf("%s: environment variable %s is reserved by Lambda", name, k)
				}
			}
			return nil
		}},
		{"REWIND_AUDIT_TABLE is the audit table", func(tpl template) error { _, err := tpl.auditTable(); return err }},
		{"REWIND_BUCKET is the capture bucket", func(tpl template) error { _, err := tpl.bucket(); return err }},
		{"REWIND_PREFIX from parameter", envRef("REWIND_PREFIX", "ParquetPrefix")},
		{"REWIND_TENANT_ATTRIBUTE from parameter", envRef("REWIND_TENANT_ATTRIBUTE", "TenantAttribute")},
		{"REWIND_TENANT_REGEX from parameter", envRef("REWIND_TENANT_REGEX", "TenantRegex")},
		{"REWIND_TTL_DAYS from parameter", envRef("REWIND_TTL_DAYS", "TTLDays")},
		{"role is an IAM role of this template", func(tpl template) error { _, err := tpl.role(); return err }},
	}
}

func TestFunction(t *testing.T) { runChecks(t, functionChecks()) }

func TestParameters(t *testing.T) {
	tpl := loadTemplate(t)
	params := asMap(tpl["Parameters"])
	tests := []struct {
		name     string
		typ      string
		def      any // nil: required
		min, max any // nil: not set
	}{
		{"SourceStreamArn", "String", nil, nil, nil},
		{"SourceTableName", "String", nil, nil, nil},
		{"BatchSize", "Number", 100, 1, 10000},
		{"MaximumBatchingWindowInSeconds", "Number", 1, 0, 300},
		{"MaximumRetryAttempts", "Number", 10, 0, 10000},
		{"MaximumRecordAgeInSeconds", "Number", 86400, 60, 604800},
		{"TTLDays", "Number", streamhandler.DefaultTTLDays, 1, 35},
		{"TenantAttribute", "String", rewind.DefaultTenantAttribute, nil, nil},
		{"TenantRegex", "String", "", nil, nil},
		{"ParquetPrefix", "String", streamhandler.DefaultPrefix, nil, nil},
		{"ParquetRetentionDays", "Number", 400, 1, 3653},
		{"LogRetentionDays", "Number", 30, nil, nil},
		{"FailureRetentionDays", "Number", 35, 1, 3653},
		{"IteratorAgeAlarmMilliseconds", "Number", 3600000, 1000, 86400000},
		{"AlarmTopicArn", "String", "", nil, nil},
		{"CompactionSchedule", "String", "", nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := asMap(params[tt.name])
			if p == nil {
				t.Fatalf("parameter %s is not declared", tt.name)
			}
			if p["Type"] != tt.typ {
				t.Errorf("Type is %v, want %s", p["Type"], tt.typ)
			}
			if p["Default"] != tt.def {
				t.Errorf("Default is %#v, want %#v", p["Default"], tt.def)
			}
			if p["MinValue"] != tt.min || p["MaxValue"] != tt.max {
				t.Errorf("MinValue, MaxValue are %v, %v, want %v, %v", p["MinValue"], p["MaxValue"], tt.min, tt.max)
			}
			if p["Description"] == nil {
				t.Error("no Description")
			}
		})
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.name] = true
	}
	for name := range params {
		if !covered[name] {
			t.Errorf("parameter %s is not covered by this test", name)
		}
	}
}

// TestParameterPatterns checks AllowedPattern against values a person may
// type. CloudFormation matches the whole value; the patterns are written in
// the subset that RE2 and Java agree on.
func TestParameterPatterns(t *testing.T) {
	tpl := loadTemplate(t)
	tests := []struct {
		param string
		value string
		ok    bool
	}{
		{"SourceStreamArn", "arn:aws:dynamodb:eu-west-1:123456789012:table/orders/stream/2024-01-01T00:00:00.000", true},
		{"SourceStreamArn", "arn:aws-us-gov:dynamodb:us-gov-west-1:123456789012:table/orders/stream/2024-01-01T00:00:00.000", true},
		{"SourceStreamArn", "arn:aws:dynamodb:eu-west-1:123456789012:table/orders", false},
		{"SourceStreamArn", "arn:aws:kinesis:eu-west-1:123456789012:stream/orders", false},
		{"SourceTableName", "orders", true},
		{"SourceTableName", "my.orders-v2_prod", true},
		{"SourceTableName", "or", false},
		{"ParquetPrefix", "changes", true},
		{"ParquetPrefix", "rewind/orders/changes", true},
		{"ParquetPrefix", "/changes", false},
		{"ParquetPrefix", "changes/", false},
		{"ParquetPrefix", "a//b", false},
		{"ParquetPrefix", "", false},
		{"CompactionSchedule", "", true},
		{"CompactionSchedule", "rate(1 hour)", true},
		{"CompactionSchedule", "cron(15 * * * ? *)", true},
		{"CompactionSchedule", "hourly", false},
	}
	for _, tt := range tests {
		t.Run(tt.param+"="+tt.value, func(t *testing.T) {
			pat, _ := at(tpl["Parameters"], tt.param, "AllowedPattern").(string)
			if pat == "" {
				t.Fatalf("%s has no AllowedPattern", tt.param)
			}
			re, err := regexp.Compile("^(?:" + pat + ")$")
			if err != nil {
				t.Fatal(err)
			}
			if got := re.MatchString(tt.value); got != tt.ok {
				t.Errorf("%s AllowedPattern %q matches %q: %v, want %v", tt.param, pat, tt.value, got, tt.ok)
			}
		})
	}
}

// TestEnvironmentMatchesStreamhandlerConfig feeds the function's
// environment, as deployed with the parameters' defaults and with every
// optional parameter set, to streamhandler.ConfigFromEnv: the Lambda must
// start with it, and every variable the template sets must be one the
// handler reads (a misspelt name would be silently ignored otherwise).
func TestEnvironmentMatchesStreamhandlerConfig(t *testing.T) {
	tpl := loadTemplate(t)
	defaults := map[string]any{}
	for name, p := range asMap(tpl["Parameters"]) {
		defaults[name] = at(p, "Default")
	}
	tests := []struct {
		name      string
		overrides map[string]any
		check     func(t *testing.T, cfg streamhandler.Config)
	}{
		{"defaults", nil, func(t *testing.T, cfg streamhandler.Config) {
			if cfg.Tenant.Regex != nil {
				t.Errorf("TenantRegex is %v, want none", cfg.Tenant.Regex)
			}
			if cfg.TTLDays != 35 || cfg.Prefix != "changes" || cfg.Tenant.Attribute != "pk" {
				t.Errorf("TTLDays, Prefix, TenantAttribute are %d, %q, %q; want 35, changes, pk", cfg.TTLDays, cfg.Prefix, cfg.Tenant.Attribute)
			}
		}},
		{"all set", map[string]any{
			"TenantRegex":     "^TENANT#([^#]+)#",
			"TenantAttribute": "PK",
			"TTLDays":         7,
			"ParquetPrefix":   "rewind/orders",
		}, func(t *testing.T, cfg streamhandler.Config) {
			if cfg.Tenant.Regex == nil || cfg.Tenant.Regex.String() != "^TENANT#([^#]+)#" {
				t.Errorf("TenantRegex is %v, want ^TENANT#([^#]+)#", cfg.Tenant.Regex)
			}
			if cfg.TTLDays != 7 || cfg.Prefix != "rewind/orders" || cfg.Tenant.Attribute != "PK" {
				t.Errorf("TTLDays, Prefix, TenantAttribute are %d, %q, %q; want 7, rewind/orders, PK", cfg.TTLDays, cfg.Prefix, cfg.Tenant.Attribute)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			params := map[string]any{}
			for k, v := range defaults {
				params[k] = v
			}
			for k, v := range tt.overrides {
				params[k] = v
			}
			_, fn, err := tpl.function()
			if err != nil {
				t.Fatal(err)
			}
			env := map[string]string{}
			for k, v := range asMap(at(fn, "Environment", "Variables")) {
				s, present, err := tpl.resolve(v, params)
				if err != nil {
					t.Fatalf("%s: %v", k, err)
				}
				if present {
					env[k] = s
				}
			}
			read := map[string]bool{}
			cfg, err := streamhandler.ConfigFromEnv(func(k string) string {
				read[k] = true
				return env[k]
			})
			if err != nil {
				t.Fatalf("the function would not start: %v (environment %v)", err, env)
			}
			for k := range env {
				if !read[k] {
					t.Errorf("the template sets %s, which streamhandler does not read", k)
				}
			}
			audit, _ := tpl.auditTable()
			bucket, _ := tpl.bucket()
			if cfg.AuditTable != audit || cfg.Bucket != bucket {
				t.Errorf("AuditTable, Bucket are %q, %q; want %q, %q", cfg.AuditTable, cfg.Bucket, audit, bucket)
			}
			tt.check(t, cfg)
		})
	}
}

// statement is one IAM policy statement of the function's role.
type statement struct {
	where     string
	effect    string
	actions   []string
	resources []any
	other     []string // NotAction, NotResource, NotPrincipal: never wanted here
}

// roleStatements collects the statements that apply to role: its inline
// Policies and any AWS::IAM::Policy or RolePolicy of the template naming it.
func (tpl template) roleStatements(role string) ([]statement, error) {
	type doc struct {
		where string
		doc   any
	}
	var docs []doc
	for i, p := range asList(at(tpl.props(role), "Policies")) {
		docs = append(docs, doc{fmt.Sprintf("%s policy %d (%v)", role, i, at(p, "PolicyName")), at(p, "PolicyDocument")})
	}
	for _, typ := range []string{"AWS::IAM::Policy", "AWS::IAM::ManagedPolicy", "AWS::IAM::RolePolicy"} {
		for _, name := range tpl.ofType(typ) {
			p := tpl.props(name)
			roles := asList(p["Roles"])
			if p["RoleName"] != nil {
				roles = append(roles, p["RoleName"])
			}
			for _, r := range roles {
				if ref, _ := refOf(r); ref == role {
					docs = append(docs, doc{name, p["PolicyDocument"]})
				}
			}
		}
	}
	var out []statement
	for _, d := range docs {
		for i, s := range asList(at(d.doc, "Statement")) {
			m := asMap(s)
			st := statement{where: fmt.Sprintf("%s statement %d", d.where, i)}
			if sid, ok := m["Sid"].(string); ok {
				st.where = fmt.Sprintf("%s statement %s", d.where, sid)
			}
			st.effect, _ = m["Effect"].(string)
			for _, a := range asList(m["Action"]) {
				s, ok := a.(string)
				if !ok {
					return nil, fmt.Errorf("%s: action %s is not a plain string", st.where, show(a))
				}
				st.actions = append(st.actions, s)
			}
			st.resources = asList(m["Resource"])
			for _, k := range []string{"NotAction", "NotResource", "NotPrincipal"} {
				if m[k] != nil {
					st.other = append(st.other, k)
				}
			}
			out = append(out, st)
		}
	}
	return out, nil
}

// checkRole checks the function's role for least privilege. Every data
// action (DynamoDB, S3, SQS) must be one the capture needs, named without
// wildcards, on exactly the resource it needs.
func checkRole(tpl template) error {
	role, err := tpl.role()
	if err != nil {
		return err
	}
	audit, err := tpl.auditTable()
	if err != nil {
		return err
	}
	bucket, err := tpl.bucket()
	if err != nil {
		return err
	}
	failures, err := tpl.failureBucket()
	if err != nil {
		return err
	}
	var errs []error
	fail := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	trust := asList(at(tpl.props(role), "AssumeRolePolicyDocument", "Statement"))
	if len(trust) != 1 || at(trust[0], "Principal", "Service") != "lambda.amazonaws.com" || at(trust[0], "Action") != "sts:AssumeRole" {
		fail("%s: trust policy must let only lambda.amazonaws.com assume the role, is %v", role, trust)
	}
	basicExecution := false
	for _, arn := range asList(at(tpl.props(role), "ManagedPolicyArns")) {
		s, _ := arn.(string)
		if sub, ok := subOf(arn); ok {
			s = sub
		}
		if strings.HasSuffix(s, ":iam::aws:policy/service-role/AWSLambdaBasicExecutionRole") {
			basicExecution = true
			continue
		}
		fail("%s: managed policy %s: only AWSLambdaBasicExecutionRole may be attached", role, show(arn))
	}

	isStreamArn := func(r any) bool { ref, _ := refOf(r); return ref == "SourceStreamArn" }
	isAuditArn := func(r any) bool { res, attr, _ := getAttOf(r); return res == audit && attr == "Arn" }
	isFailureBucket := func(r any) bool { res, attr, _ := getAttOf(r); return res == failures && attr == "Arn" }
	isFailureRecords := func(r any) bool { s, _ := subOf(r); return s == "${"+failures+".Arn}/aws/lambda/*" }
	isParquetObjects := func(r any) bool {
		s, _ := subOf(r)
		return s == "${"+bucket+".Arn}/${ParquetPrefix}/*" ||
			s == "arn:${AWS::Partition}:s3:::${"+bucket+"}/${ParquetPrefix}/*"
	}
	// The data actions the capture needs, each with the only resource it
	// may have.
	allowed := map[string]struct {
		what string
		ok   func(any) bool
	}{
		"dynamodb:DescribeStream":   {"Ref SourceStreamArn", isStreamArn},
		"dynamodb:GetRecords":       {"Ref SourceStreamArn", isStreamArn},
		"dynamodb:GetShardIterator": {"Ref SourceStreamArn", isStreamArn},
		"dynamodb:ListStreams":      {"Ref SourceStreamArn", isStreamArn},
		"dynamodb:BatchWriteItem":   {"!GetAtt " + audit + ".Arn", isAuditArn},
		"s3:PutObject":              {`!Sub "${` + bucket + `.Arn}/${ParquetPrefix}/*"`, isParquetObjects},
		// The event source mapping writes failure records with the
		// function's role (AWS documents s3:PutObject and s3:ListBucket).
		"s3:ListBucket": {"!GetAtt " + failures + ".Arn", isFailureBucket},
	}
	putOK := allowed["s3:PutObject"]
	allowed["s3:PutObject"] = struct {
		what string
		ok   func(any) bool
	}{putOK.what + ` or !Sub "${` + failures + `.Arn}/aws/lambda/*"`, func(r any) bool { return putOK.ok(r) || isFailureRecords(r) }}
	required := []string{
		"dynamodb:DescribeStream", "dynamodb:GetRecords", "dynamodb:GetShardIterator", "dynamodb:ListStreams",
		"dynamodb:BatchWriteItem", "s3:PutObject", "s3:ListBucket",
	}
	if !basicExecution {
		required = append(required, "logs:CreateLogStream", "logs:PutLogEvents")
	}
	granted := map[string]bool{}

	stmts, err := tpl.roleStatements(role)
	if err != nil {
		return err
	}
	for _, st := range stmts {
		if len(st.other) > 0 {
			fail("%s uses %v; name actions and resources explicitly", st.where, st.other)
		}
		if st.effect != "Allow" {
			continue
		}
		for _, action := range st.actions {
			service, _, _ := strings.Cut(action, ":")
			switch service {
			case "dynamodb", "s3", "sqs", "*":
				if strings.ContainsAny(action, "*?") {
					fail("%s: wildcard action %s", st.where, action)
					continue
				}
				rule, ok := allowed[action]
				if !ok {
					fail("%s: the capture needs no %s", st.where, action)
					continue
				}
				for _, r := range st.resources {
					if r == "*" {
						fail(`%s: %s on Resource "*", want %s`, st.where, action, rule.what)
					} else if !rule.ok(r) {
						fail("%s: %s on %s, want only %s", st.where, action, show(r), rule.what)
					}
				}
			case "logs":
				for _, r := range st.resources {
					if r == "*" {
						fail(`%s: %s on Resource "*"; scope it to the function's log group`, st.where, action)
					}
				}
			default:
				fail("%s: the capture needs no %s", st.where, action)
				continue
			}
			if len(st.resources) > 0 {
				granted[action] = true
			}
		}
	}
	for _, a := range required {
		if !granted[a] {
			fail("%s does not grant %s, which the capture needs", role, a)
		}
	}
	return errors.Join(errs...)
}

func TestRoleLeastPrivilege(t *testing.T) {
	if err := checkRole(loadTemplate(t)); err != nil {
		t.Error(err)
	}
}

// TestChecksCatchMutations breaks the template one property at a time and
// asserts that the check guarding that property notices: a check that can
// never fail protects nothing.
func TestChecksCatchMutations(t *testing.T) {
	data, err := os.ReadFile("template.yaml")
	if err != nil {
		t.Fatal(err)
	}
	all := map[string]func(template) error{"role": checkRole}
	for _, group := range [][]check{esmChecks(), auditTableChecks(), bucketChecks(), functionChecks()} {
		for _, c := range group {
			all[c.name] = c.fn
		}
	}
	res := func(name string, path ...any) []any {
		return append([]any{"Resources", name}, path...)
	}
	props := func(name string, path ...any) []any {
		return res(name, append([]any{"Properties"}, path...)...)
	}
	esm := func(path ...any) []any { return props("StreamEventSourceMapping", path...) }
	fn := func(path ...any) []any { return props("StreamHandlerFunction", path...) }
	table := func(path ...any) []any { return props("AuditTable", path...) }
	bucket := func(path ...any) []any { return props("CaptureBucket", path...) }
	stmt := func(sid string, path ...any) func(template) []any {
		return func(tpl template) []any {
			for i, s := range asList(at(map[string]any(tpl), props("StreamHandlerRole", "Policies", 0, "PolicyDocument", "Statement")...)) {
				if at(s, "Sid") == sid {
					return props("StreamHandlerRole", append([]any{"Policies", 0, "PolicyDocument", "Statement", i}, path...)...)
				}
			}
			return nil
		}
	}
	fixed := func(path ...any) func(template) []any { return func(template) []any { return path } }
	ref := func(name string) any { return map[string]any{"Ref": name} }
	getAtt := func(name string) any { return map[string]any{"Fn::GetAtt": []any{name, "Arn"}} }
	del := deleteKey{}

	tests := []struct {
		check string
		path  func(template) []any
		value any
	}{
		{"BisectBatchOnFunctionError is true", fixed(esm("BisectBatchOnFunctionError")...), false},
		{"FunctionResponseTypes has ReportBatchItemFailures", fixed(esm("FunctionResponseTypes")...), []any{}},
		{"MaximumRetryAttempts bounded", fixed(esm("MaximumRetryAttempts")...), -1},
		{"MaximumRetryAttempts bounded", fixed("Parameters", "MaximumRetryAttempts", "MinValue"), -1},
		{"MaximumRecordAgeInSeconds bounded", fixed("Parameters", "MaximumRecordAgeInSeconds", "MinValue"), -1},
		{"MaximumRecordAgeInSeconds bounded", fixed("Parameters", "MaximumRecordAgeInSeconds", "MaxValue"), del},
		{"OnFailure destination is a retained, encrypted, private S3 bucket", fixed(esm("DestinationConfig")...), del},
		{"OnFailure destination is a retained, encrypted, private S3 bucket", fixed(esm("DestinationConfig", "OnFailure", "Destination")...), ref("SourceStreamArn")},
		{"OnFailure destination is a retained, encrypted, private S3 bucket", fixed(esm("DestinationConfig", "OnFailure", "Destination")...), getAtt("CaptureBucket")},
		{"OnFailure destination is a retained, encrypted, private S3 bucket", fixed(props("FailureBucket", "BucketEncryption")...), del},
		{"OnFailure destination is a retained, encrypted, private S3 bucket", fixed(props("FailureBucket", "PublicAccessBlockConfiguration", "BlockPublicPolicy")...), false},
		{"OnFailure destination is a retained, encrypted, private S3 bucket", fixed(res("FailureBucket", "DeletionPolicy")...), "Delete"},
		{"failure records expire after FailureRetentionDays (default 35, the PITR window)", fixed(props("FailureBucket", "LifecycleConfiguration", "Rules", 0, "ExpirationInDays")...), 7},
		{"failure records expire after FailureRetentionDays (default 35, the PITR window)", fixed("Parameters", "FailureRetentionDays", "Default"), 14},
		{"alarms on Errors, IteratorAge and new failure records, notifying AlarmTopicArn when given", fixed(res("IteratorAgeAlarm")...), del},
		{"alarms on Errors, IteratorAge and new failure records, notifying AlarmTopicArn when given", fixed(props("ErrorsAlarm", "AlarmActions")...), del},
		{"alarms on Errors, IteratorAge and new failure records, notifying AlarmTopicArn when given", fixed(props("FailureRecordAlarm", "Dimensions", 1, "Value")...), "other"},
		{"alarms on Errors, IteratorAge and new failure records, notifying AlarmTopicArn when given", fixed(props("IteratorAgeAlarm", "Threshold")...), 60000},
		{"BatchSize from parameter", fixed(esm("BatchSize")...), 100},
		{"MaximumBatchingWindowInSeconds from parameter", fixed("Parameters", "MaximumBatchingWindowInSeconds", "MaxValue"), 600},
		{"EventSourceArn is the SourceStreamArn parameter", fixed(esm("EventSourceArn")...), "arn:aws:dynamodb:eu-west-1:123456789012:table/t/stream/x"},
		{"ParallelizationFactor is 1", fixed(esm("ParallelizationFactor")...), 2},
		{"StartingPosition is TRIM_HORIZON", fixed(esm("StartingPosition")...), "LATEST"},
		{"function has no SAM stream event", fixed(fn("Events")...), map[string]any{"Stream": map[string]any{"Type": "DynamoDB"}}},
		{"on-demand billing", fixed(table("BillingMode")...), "PROVISIONED"},
		{"key pk HASH, sk RANGE", fixed(table("KeySchema", 1, "AttributeName")...), "item"},
		{"GSI item-history on item, sk with all attributes", fixed(table("GlobalSecondaryIndexes", 0, "Projection", "ProjectionType")...), "KEYS_ONLY"},
		{"GSI item-history on item, sk with all attributes", fixed(table("GlobalSecondaryIndexes", 0, "IndexName")...), "by-item"},
		{"GSI hour on hour, sk with all attributes", fixed(table("GlobalSecondaryIndexes", 1, "Projection", "ProjectionType")...), "KEYS_ONLY"},
		{"GSI hour on hour, sk with all attributes", fixed(table("GlobalSecondaryIndexes", 1, "KeySchema", 0, "AttributeName")...), "pk"},
		{"GSI hour on hour, sk with all attributes", fixed(table("GlobalSecondaryIndexes", 1)...), del},
		{"key attributes are strings", fixed(table("AttributeDefinitions", 3, "AttributeType")...), "N"},
		{"TTL on expiresAt", fixed(table("TimeToLiveSpecification", "Enabled")...), false},
		{"TTL on expiresAt", fixed(table("TimeToLiveSpecification", "AttributeName")...), "ttl"},
		{"point-in-time recovery", fixed(table("PointInTimeRecoverySpecification", "PointInTimeRecoveryEnabled")...), false},
		{"encryption at rest", fixed(table("SSESpecification")...), del},
		{"retained on stack deletion and replacement", fixed(res("AuditTable", "DeletionPolicy")...), "Delete"},
		{"default encryption", fixed(bucket("BucketEncryption")...), del},
		{"public access blocked", fixed(bucket("PublicAccessBlockConfiguration", "RestrictPublicBuckets")...), false},
		{"ACLs disabled", fixed(bucket("OwnershipControls")...), del},
		{"Parquet objects expire", fixed(bucket("LifecycleConfiguration", "Rules", 0, "Status")...), "Disabled"},
		{"Parquet objects expire", fixed("Parameters", "ParquetRetentionDays", "Default"), 0},
		{"incomplete multipart uploads aborted", fixed(bucket("LifecycleConfiguration", "Rules", 1)...), del},
		{"retained on stack deletion", fixed(res("CaptureBucket", "UpdateReplacePolicy")...), del},
		{"policy denies requests without TLS", fixed(props("CaptureBucketPolicy", "PolicyDocument", "Statement", 0, "Condition", "Bool", "aws:SecureTransport")...), "true"},
		{"runtime provided.al2023", fixed(fn("Runtime")...), "provided.al2"},
		{"arm64", fixed(fn("Architectures")...), []any{"x86_64"}},
		{"handler bootstrap", fixed(fn("Handler")...), "main"},
		{"CodeUri is the build output", fixed(fn("CodeUri")...), "../cmd/streamhandler/"},
		{"timeout and memory in range", fixed(fn("Timeout")...), 3},
		{"JSON logs", fixed(fn("LoggingConfig")...), del},
		{"no reserved environment variables", fixed(fn("Environment", "Variables", "AWS_LAMBDA_LOG_FORMAT")...), "JSON"},
		{"REWIND_AUDIT_TABLE is the audit table", fixed(fn("Environment", "Variables", "REWIND_AUDIT_TABLE")...), ref("SourceTableName")},
		{"REWIND_BUCKET is the capture bucket", fixed(fn("Environment", "Variables", "REWIND_BUCKET")...), ref("AuditTable")},
		{"REWIND_TTL_DAYS from parameter", fixed(fn("Environment", "Variables", "REWIND_TTL_DAYS")...), "35"},
		{"REWIND_TENANT_REGEX from parameter", fixed(fn("Environment", "Variables", "REWIND_TENANT_REGEX")...), del},
		{"role", stmt("WriteAuditTable", "Resource"), "*"},
		{"role", stmt("WriteAuditTable", "Action"), "dynamodb:*"},
		{"role", stmt("WriteAuditTable", "Action"), []any{"dynamodb:PutItem", "dynamodb:DeleteItem"}},
		{"role", stmt("WriteAuditTable", "Resource"), ref("SourceStreamArn")},
		{"role", stmt("WriteParquet", "Action"), []any{"s3:PutObject", "s3:DeleteObject"}},
		{"role", stmt("WriteParquet", "Resource"), map[string]any{"Fn::Sub": "${CaptureBucket.Arn}/*"}},
		{"role", stmt("ReadSourceStream", "Resource"), "*"},
		{"role", stmt("ReadSourceStream", "Action"), []any{"dynamodb:GetRecords"}},
		{"role", stmt("WriteFailureRecords", "Resource"), map[string]any{"Fn::Sub": "${FailureBucket.Arn}/*"}},
		{"role", stmt("ListFailureBucket", "Resource"), "*"},
		{"role", stmt("WriteLogs", "Resource"), "*"},
		{"role", stmt("WriteLogs", "NotResource"), "arn:aws:logs:*:*:*"},
		{"role", fixed(props("StreamHandlerRole", "ManagedPolicyArns")...), []any{"arn:aws:iam::aws:policy/AmazonDynamoDBFullAccess"}},
		{"role", fixed(props("StreamHandlerRole", "AssumeRolePolicyDocument", "Statement", 0, "Principal", "Service")...), "ec2.amazonaws.com"},
	}
	for _, tt := range tests {
		check, ok := all[tt.check]
		if !ok {
			t.Fatalf("no check named %q", tt.check)
		}
		pristine, err := parseTemplate(data)
		if err != nil {
			t.Fatal(err)
		}
		if err := check(pristine); err != nil {
			t.Fatalf("check %q fails on the unmodified template: %v", tt.check, err)
		}
		path := tt.path(pristine)
		if len(path) == 0 {
			t.Fatalf("mutation for check %q: path not found", tt.check)
		}
		name := fmt.Sprintf("%s/%v=%v", tt.check, path[len(path)-1], show(tt.value))
		t.Run(name, func(t *testing.T) {
			tpl, _ := parseTemplate(data)
			if _, ok := tt.value.(deleteKey); ok {
				deletePath(t, tpl, path)
			} else {
				setPath(t, tpl, path, tt.value)
			}
			if err := check(tpl); err == nil {
				t.Errorf("check %q passes with %v set to %s", tt.check, path, show(tt.value))
			} else {
				t.Logf("caught: %v", err)
			}
		})
	}
}

// deleteKey as a mutation's value deletes the key instead of setting it.
type deleteKey struct{}

// parent returns the mapping or sequence holding the last element of path;
// all but the last element must exist.
func parent(t *testing.T, tpl template, path []any) any {
	t.Helper()
	p := at(map[string]any(tpl), path[:len(path)-1]...)
	if p == nil {
		t.Fatalf("mutation path %v does not exist", path)
	}
	return p
}

func setPath(t *testing.T, tpl template, path []any, v any) {
	t.Helper()
	switch p := parent(t, tpl, path).(type) {
	case map[string]any:
		p[path[len(path)-1].(string)] = v
	case []any:
		p[path[len(path)-1].(int)] = v
	}
}

func deletePath(t *testing.T, tpl template, path []any) {
	t.Helper()
	switch p := parent(t, tpl, path).(type) {
	case map[string]any:
		k := path[len(path)-1].(string)
		if _, ok := p[k]; !ok {
			t.Fatalf("mutation path %v does not exist", path)
		}
		delete(p, k)
	case []any:
		// Sequences are shared by reference with the parent mapping, so
		// blank the element instead of shrinking the slice.
		p[path[len(path)-1].(int)] = nil
	}
}

func TestOutputs(t *testing.T) {
	tpl := loadTemplate(t)
	fn, _, err := tpl.function()
	if err != nil {
		t.Fatal(err)
	}
	audit, _ := tpl.auditTable()
	bucket, _ := tpl.bucket()
	failures, _ := tpl.failureBucket()
	tests := []struct {
		output string
		want   any
	}{
		{"FunctionName", map[string]any{"Ref": fn}},
		{"FunctionArn", map[string]any{"Fn::GetAtt": []any{fn, "Arn"}}},
		{"AuditTableName", map[string]any{"Ref": audit}},
		{"BucketName", map[string]any{"Ref": bucket}},
		{"FailureBucketName", map[string]any{"Ref": failures}},
		{"FailureBucketArn", map[string]any{"Fn::GetAtt": []any{failures, "Arn"}}},
	}
	for _, tt := range tests {
		t.Run(tt.output, func(t *testing.T) {
			got := at(tpl["Outputs"], tt.output, "Value")
			if fmt.Sprint(got) != fmt.Sprint(tt.want) {
				t.Errorf("Value is %s, want %s", show(got), show(tt.want))
			}
		})
	}
}

// TestCFNLint validates the template against the CloudFormation resource
// schemas and the SAM transform with cfn-lint (pip install cfn-lint),
// informational checks included (--include-checks I, such as I3011: a
// stateful resource without an explicit DeletionPolicy): any finding fails.
// Property names and types are its job; the tests above check the values
// that decide whether a change can be lost. Without cfn-lint the test is
// skipped, or fails when REWIND_REQUIRE_LOCAL_AWS=1 (CI).
func TestCFNLint(t *testing.T) {
	if testing.Short() {
		t.Skip("cfn-lint takes a few seconds")
	}
	missing := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		if os.Getenv("REWIND_REQUIRE_LOCAL_AWS") == "1" {
			t.Fatalf("REWIND_REQUIRE_LOCAL_AWS=1 but %s (pip install cfn-lint)", msg)
		}
		t.Skipf("skipping: %s (pip install cfn-lint; set REWIND_REQUIRE_LOCAL_AWS=1 to fail instead)", msg)
	}
	path, err := exec.LookPath("cfn-lint")
	if err != nil {
		missing("cfn-lint is not installed")
	}
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, path, "--include-checks", "I", "--non-zero-exit-code", "informational",
		"--format", "parseable", "template.yaml").CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit) && exit.ExitCode() > 15:
		// Not a lint result (cfn-lint exits with bits 2, 4, 8): a broken
		// install, such as a pyenv shim without its interpreter.
		missing("cfn-lint did not run (exit %d): %s", exit.ExitCode(), out)
	default:
		t.Errorf("cfn-lint --include-checks I template.yaml: %v; fix each finding (file:line:col:rule:message):\n%s", err, out)
	}
}

// TestCompaction: the scheduled compaction is off by default (every one of
// its resources under CompactionOn, which needs a schedule), runs
// cmd/compactor over the capture bucket and prefix, and its role may list,
// read, write and delete under the capture prefix and write its logs:
// nothing else.
func TestCompaction(t *testing.T) {
	tpl := loadTemplate(t)
	res := tpl.resources()
	cond := at(tpl["Conditions"], "CompactionOn")
	if !reflect.DeepEqual(cond, map[string]any{"Fn::Not": []any{map[string]any{"Fn::Equals": []any{map[string]any{"Ref": "CompactionSchedule"}, ""}}}}) {
		t.Fatalf("CompactionOn is %v, want a non-empty CompactionSchedule", cond)
	}
	for _, n := range []string{"CompactionFunction", "CompactionRole", "CompactionLogGroup"} {
		if at(res, n, "Condition") != "CompactionOn" {
			t.Errorf("%s is not under Condition CompactionOn: compaction would be on by default", n)
		}
	}
	fn := tpl.props("CompactionFunction")
	if fn["CodeUri"] != "../dist/compactor/" || !reflect.DeepEqual(at(fn, "Environment", "Variables"), map[string]any{
		"REWIND_BUCKET": map[string]any{"Ref": "CaptureBucket"}, "REWIND_PREFIX": map[string]any{"Ref": "ParquetPrefix"},
	}) || !reflect.DeepEqual(at(fn, "Events", "Schedule", "Properties", "ScheduleExpression"), map[string]any{"Ref": "CompactionSchedule"}) {
		t.Errorf("CompactionFunction properties %v", fn)
	}
	stmts, _ := at(tpl.props("CompactionRole"), "Policies").([]any)
	if len(stmts) != 1 {
		t.Fatalf("CompactionRole has %d policies, want 1", len(stmts))
	}
	got := map[string]any{}
	for _, s := range at(stmts[0], "PolicyDocument", "Statement").([]any) {
		got[at(s, "Sid").(string)] = []any{at(s, "Action"), at(s, "Resource")}
	}
	want := map[string]any{
		"ListCapture":    []any{"s3:ListBucket", map[string]any{"Fn::GetAtt": []any{"CaptureBucket", "Arn"}}},
		"RewriteCapture": []any{[]any{"s3:GetObject", "s3:PutObject", "s3:DeleteObject"}, map[string]any{"Fn::Sub": "${CaptureBucket.Arn}/${ParquetPrefix}/*"}},
		"WriteLogs":      []any{[]any{"logs:CreateLogStream", "logs:PutLogEvents"}, map[string]any{"Fn::GetAtt": []any{"CompactionLogGroup", "Arn"}}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("CompactionRole statements\n%v\nwant\n%v", got, want)
	}
}
