# Developer entry points. The README's two commands are `make drill` and
# `make test`; both install what they need first.

GO ?= go

.PHONY: drill test local-aws check vet lambda clean

# The local incident drill: starts DynamoDB Local and S3, plays the story,
# checks the outcome, stops the stack.
drill: local-aws
	$(GO) run ./cmd/rewind-drill

# Formatting, vet and every test with the race detector, then the check that
# DuckDB reads the capture Parquet (in bench/, its own module, so the product
# never depends on DuckDB). CI runs this with REWIND_REQUIRE_LOCAL_AWS=1, so a
# missing emulator fails instead of skipping.
test: local-aws check
	$(GO) test -race -timeout 20m ./...
	cd bench && $(GO) test ./compat/ ./athenalocal/

# The reliability report: every TestReliability suite (capture, crash,
# faults, bad input) appends its figures to a fresh reliability.jsonl, then
# internal/tools/reliabilityreport prints them as the README's Markdown
# tables. The tables print even when a suite fails; the target fails then.
.PHONY: reliability
reliability: local-aws
	rm -f reliability.jsonl
	REWIND_REQUIRE_LOCAL_AWS=1 REWIND_REPORT=$(CURDIR)/reliability.jsonl $(GO) test -count=1 -timeout 20m -run '^TestReliability' ./...; \
	status=$$?; $(GO) run ./internal/tools/reliabilityreport reliability.jsonl && exit $$status

# DynamoDB Local (from npm package amplify-dynamodb-simulator) and the IAM
# policy evaluator the policy tests use (npm @cloud-copilot/iam-simulate,
# AGPL, a test tool only) into .local/.
local-aws:
	scripts/install-local-aws.sh
	scripts/install-iam-simulate.sh

check: vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

vet:
	$(GO) vet ./...

# Build the capture Lambda for provided.al2023/arm64 into dist/streamhandler/
# (the CodeUri of deploy/template.yaml) and dist/streamhandler.zip.
lambda:
	scripts/build-lambda.sh

clean:
	rm -rf dist
