package awsrec

import (
	"net/http"
	"net/url"
	"reflect"
	"testing"
)

func TestRequests(t *testing.T) {
	const acct, region = "123456789012", "eu-west-1"
	tbl := func(n string) string { return "arn:aws:dynamodb:eu-west-1:123456789012:table/" + n }
	tests := []struct {
		name string
		call Call
		want []Request
	}{
		{"transaction as its parts", Call{Service: "dynamodb", Operation: "TransactWriteItems", Body: map[string]any{"TransactItems": []any{
			map[string]any{"Put": map[string]any{"TableName": "a"}},
			map[string]any{"ConditionCheck": map[string]any{"TableName": "b"}},
		}}}, []Request{req("dynamodb:PutItem", tbl("a")), req("dynamodb:ConditionCheckItem", tbl("b"))}},
		{"batch per table", Call{Service: "dynamodb", Operation: "BatchWriteItem", Body: map[string]any{"RequestItems": map[string]any{"b": nil, "a": nil}}},
			[]Request{req("dynamodb:BatchWriteItem", tbl("a")), req("dynamodb:BatchWriteItem", tbl("b"))}},
		{"query on an index", Call{Service: "dynamodb", Operation: "Query", Body: map[string]any{"TableName": "a", "IndexName": "gsi"}},
			[]Request{req("dynamodb:Query", tbl("a")+"/index/gsi")}},
		{"stream ARN moved to the test account", Call{Service: "dynamodbstreams", Operation: "DescribeStream", Body: map[string]any{"StreamArn": "arn:aws:dynamodb:ddblocal:000000000000:table/a/stream/L"}},
			[]Request{req("dynamodb:DescribeStream", tbl("a")+"/stream/L")}},
		{"list with prefix", Call{Service: "s3", Method: http.MethodGet, Path: "/b", Query: url.Values{"list-type": {"2"}, "prefix": {"p/"}}},
			[]Request{{Action: "s3:ListBucket", Resource: "arn:aws:s3:::b", Context: map[string][]string{"s3:prefix": {"p/"}}}}},
		{"head object is GetObject", Call{Service: "s3", Method: http.MethodHead, Path: "/b/k/x"}, []Request{req("s3:GetObject", "arn:aws:s3:::b/k/x")}},
		{"attach with its policy", Call{Service: "iam", Operation: "AttachRolePolicy", Form: url.Values{"RoleName": {"app"}, "PolicyArn": {"arn:aws:iam::999999999999:policy/D"}}},
			[]Request{{Action: "iam:AttachRolePolicy", Resource: "arn:aws:iam::123456789012:role/app", Context: map[string][]string{"iam:PolicyARN": {"arn:aws:iam::123456789012:policy/D"}}}}},
		{"caller identity needs nothing", Call{Service: "sts", Operation: "GetCallerIdentity"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.call.Service == "s3" {
				tt.call.Header = http.Header{}
				tt.call.Operation = s3Operation(tt.call)
			}
			got, err := Requests(tt.call, acct, region)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
	if _, err := Requests(Call{Service: "dynamodb", Operation: "DeleteBackup"}, acct, region); err == nil {
		t.Error("an operation without a mapping was mapped")
	}
}
