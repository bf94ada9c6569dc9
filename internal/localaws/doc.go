// Package localaws runs the local AWS test stack that rewind's integration
// tests use: DynamoDB Local (with streams) in a child JVM bound to
// 127.0.0.1, and an S3-compatible server in-process.
//
// Tests call DynamoDBForTest and S3ForTest. They share one DynamoDB Local per
// test binary and give every test its own access key id, which DynamoDB Local
// maps to its own in-memory database, so tests never see each other's tables
// or stream records. When Java or DynamoDB Local is missing the test is
// skipped, unless REWIND_REQUIRE_LOCAL_AWS=1, in which case it fails and says
// to run scripts/install-local-aws.sh.
//
// StartDynamoDB and StartS3 start a server explicitly; Config builds an
// aws.Config that talks to one.
//
// The subpackages streampoller (a DynamoDB Streams to Lambda event source
// mapping) and lambdart (a Lambda Runtime API for running a bootstrap
// binary) complete the stack.
//
// Running: install once with scripts/install-local-aws.sh (needs npm, java
// and javac; about 4 s, 56 MB download), then go test ./... as usual. Each
// test binary that uses DynamoDB starts its own DynamoDB Local (about 1 s,
// 110 MB); to share one across runs, start the launcher yourself and set
// REWIND_DYNAMODB_ENDPOINT:
//
//	D=.local/dynamodb-local
//	java -Djava.library.path=$D/DynamoDBLocal_lib -cp $D/launcher:$D/DynamoDBLocal.jar \
//	    LocalLauncher -port 8000 -no-stdin-watch
//	REWIND_DYNAMODB_ENDPOINT=http://127.0.0.1:8000 go test ./...
//
// Environment:
//
//	REWIND_DYNAMODB_LOCAL_DIR  where DynamoDBLocal.jar and launcher/ are
//	                           (default <repo>/.local/dynamodb-local)
//	REWIND_DYNAMODB_ENDPOINT   use this running DynamoDB Local instead of
//	                           starting one (e.g. http://127.0.0.1:8000)
//	REWIND_REQUIRE_LOCAL_AWS   1: fail instead of skip when not installed
//
// Nothing outside tests and test tools may import this package.
package localaws
