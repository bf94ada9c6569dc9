# Developer entry points: `make lambda`, `make test`, `make vet`.

GO ?= go

.PHONY: lambda test vet clean

# Build the capture Lambda for provided.al2023/arm64 into dist/streamhandler/
# (the CodeUri of deploy/template.yaml) and dist/streamhandler.zip.
lambda:
	scripts/build-lambda.sh

test:
	$(GO) test -race ./...

vet:
	$(GO) vet ./...

clean:
	rm -rf dist
