package fakelogs

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs/types"
)

func client(s *Server) *cloudwatchlogs.Client {
	return cloudwatchlogs.New(cloudwatchlogs.Options{
		Region:       "us-east-1",
		BaseEndpoint: aws.String(s.URL),
		Credentials:  credentials.NewStaticCredentialsProvider("AKID", "SECRET", ""),
	})
}

func TestFilterThroughSDK(t *testing.T) {
	ctx := context.Background()
	s := Start()
	defer s.Close()
	s.PageSize, s.EmptyPages = 3, true
	c := client(s)
	if _, err := c.CreateLogGroup(ctx, &cloudwatchlogs.CreateLogGroupInput{LogGroupName: aws.String("g")}); err != nil {
		t.Fatal(err)
	}
	for _, st := range []string{"a", "b"} {
		if _, err := c.CreateLogStream(ctx, &cloudwatchlogs.CreateLogStreamInput{LogGroupName: aws.String("g"), LogStreamName: aws.String(st)}); err != nil {
			t.Fatal(err)
		}
		var evs []types.InputLogEvent
		for i := range 5 {
			evs = append(evs, types.InputLogEvent{Timestamp: aws.Int64(int64(1000 + i*10)), Message: aws.String(fmt.Sprintf(`{"operation":"itemChange","n":%d,"s":"%s"}`, i, st))})
			evs = append(evs, types.InputLogEvent{Timestamp: aws.Int64(int64(1001 + i*10)), Message: aws.String("START RequestId")})
		}
		if _, err := c.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String("g"), LogStreamName: aws.String(st), LogEvents: evs}); err != nil {
			t.Fatal(err)
		}
	}
	p := cloudwatchlogs.NewFilterLogEventsPaginator(c, &cloudwatchlogs.FilterLogEventsInput{
		LogGroupName: aws.String("g"), LogStreamNames: []string{"a", "b"},
		StartTime: aws.Int64(1010), EndTime: aws.Int64(1030), FilterPattern: aws.String(`{ $.operation = "itemChange" }`),
	})
	var got []string
	pages := 0
	for p.HasMorePages() {
		out, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, e := range out.Events {
			got = append(got, fmt.Sprintf("%s@%d", *e.LogStreamName, *e.Timestamp))
		}
	}
	want := "[a@1010 b@1010 a@1020 b@1020 a@1030 b@1030]"
	if fmt.Sprint(got) != want || pages != 3 {
		t.Fatalf("got %v in %d pages, want %s in 3 (one empty, then 3+3)", got, pages, want)
	}

	_, err := c.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("nope")})
	var nf *types.ResourceNotFoundException
	if !errors.As(err, &nf) {
		t.Fatalf("missing group: %v, want ResourceNotFoundException", err)
	}
	_, err = c.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("g"), FilterPattern: aws.String("{ $.a > ")})
	var ip *types.InvalidParameterException
	if !errors.As(err, &ip) {
		t.Fatalf("bad pattern: %v, want InvalidParameterException", err)
	}
	_, err = c.PutLogEvents(ctx, &cloudwatchlogs.PutLogEventsInput{LogGroupName: aws.String("g"), LogStreamName: aws.String("a"),
		LogEvents: []types.InputLogEvent{{Timestamp: aws.Int64(5), Message: aws.String("x")}, {Timestamp: aws.Int64(4), Message: aws.String("y")}}})
	if !errors.As(err, &ip) {
		t.Fatalf("out of order batch: %v, want InvalidParameterException", err)
	}
	// The quoted-term form.
	out, err := c.FilterLogEvents(ctx, &cloudwatchlogs.FilterLogEventsInput{LogGroupName: aws.String("g"), FilterPattern: aws.String(`"START"`)})
	if err != nil {
		t.Fatal(err)
	}
	if len(out.Events) != 0 || out.NextToken == nil {
		t.Fatalf("first page with EmptyPages: %d events, token %v", len(out.Events), out.NextToken)
	}
}
