package fakessm_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/ddbrewind/rewind/internal/fakessm"
	"github.com/ddbrewind/rewind/internal/localaws"
)

func newClient(t *testing.T) (*fakessm.Server, *ssm.Client) {
	t.Helper()
	srv, err := fakessm.Start(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	cfg, err := localaws.Config(t.Context(), srv.Endpoint, "AKIDTEST")
	if err != nil {
		t.Fatal(err)
	}
	return srv, ssm.NewFromConfig(cfg)
}

func TestRealClient(t *testing.T) {
	srv, c := newClient(t)
	ctx := t.Context()

	_, err := c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("p")})
	var nf *types.ParameterNotFound
	if !errors.As(err, &nf) {
		t.Fatalf("GetParameter on missing parameter: got %v, want ParameterNotFound", err)
	}

	// Creating needs a type.
	_, err = c.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("p"), Value: aws.String("a,b")})
	if err == nil {
		t.Fatal("PutParameter without Type on a new parameter succeeded")
	}

	out, err := c.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("p"), Value: aws.String("a,b"), Type: types.ParameterTypeStringList})
	if err != nil {
		t.Fatal(err)
	}
	if out.Version != 1 {
		t.Errorf("first version = %d, want 1", out.Version)
	}
	_, err = c.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("p"), Value: aws.String("c"), Type: types.ParameterTypeStringList})
	var ae *types.ParameterAlreadyExists
	if !errors.As(err, &ae) {
		t.Fatalf("put without Overwrite on existing: got %v, want ParameterAlreadyExists", err)
	}
	out, err = c.PutParameter(ctx, &ssm.PutParameterInput{Name: aws.String("p"), Value: aws.String("c"), Overwrite: aws.Bool(true)})
	if err != nil {
		t.Fatal(err)
	}
	if out.Version != 2 {
		t.Errorf("second version = %d, want 2", out.Version)
	}

	got, err := c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("p")})
	if err != nil {
		t.Fatal(err)
	}
	if v := aws.ToString(got.Parameter.Value); v != "c" || got.Parameter.Version != 2 || got.Parameter.Type != types.ParameterTypeStringList {
		t.Errorf("GetParameter = %q v%d %s, want \"c\" v2 StringList", v, got.Parameter.Version, got.Parameter.Type)
	}
	if d := time.Since(aws.ToTime(got.Parameter.LastModifiedDate)); d < 0 || d > time.Minute {
		t.Errorf("LastModifiedDate %v is not about now", got.Parameter.LastModifiedDate)
	}

	old, err := c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("p:1")})
	if err != nil {
		t.Fatal(err)
	}
	if v := aws.ToString(old.Parameter.Value); v != "a,b" || old.Parameter.Version != 1 || aws.ToString(old.Parameter.Selector) != ":1" {
		t.Errorf("GetParameter p:1 = %q v%d selector %q", v, old.Parameter.Version, aws.ToString(old.Parameter.Selector))
	}
	_, err = c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("p:9")})
	var vnf *types.ParameterVersionNotFound
	if !errors.As(err, &vnf) {
		t.Errorf("GetParameter p:9: got %v, want ParameterVersionNotFound", err)
	}

	many, err := c.GetParameters(ctx, &ssm.GetParametersInput{Names: []string{"p", "q"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(many.Parameters) != 1 || len(many.InvalidParameters) != 1 || many.InvalidParameters[0] != "q" {
		t.Errorf("GetParameters = %d parameters, invalid %v", len(many.Parameters), many.InvalidParameters)
	}

	if _, err := c.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String("p")}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteParameter(ctx, &ssm.DeleteParameterInput{Name: aws.String("p")}); !errors.As(err, &nf) {
		t.Errorf("second delete: got %v, want ParameterNotFound", err)
	}
	if n := srv.Count("DeleteParameter"); n != 2 {
		t.Errorf("Count(DeleteParameter) = %d, want 2", n)
	}
}

func TestHookFailsRequests(t *testing.T) {
	srv, c := newClient(t)
	srv.Put("p", "String", "x")
	srv.SetHook(func(op, name string) error { return fakessm.ErrDown })
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	if _, err := c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("p")}); err == nil {
		t.Fatal("GetParameter succeeded during a simulated outage")
	}
	// The SDK's retryer tried more than once: the 500 is retryable, as
	// SSM's InternalServerError is.
	if n := srv.Count("GetParameter"); n < 2 {
		t.Errorf("GetParameter attempts = %d, want retries", n)
	}
	srv.SetHook(nil)
	if _, err := c.GetParameter(ctx, &ssm.GetParameterInput{Name: aws.String("p")}); err != nil {
		t.Fatal(err)
	}
}
