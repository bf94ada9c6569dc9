// Command rewind finds the DynamoDB items a bad deploy touched and puts
// them back from a point-in-time restore, without taking the service down.
//
// The commands live in internal/cli; run `rewind help` for the list.
// stdout carries data only (JSON Lines unless --format says otherwise);
// progress and logs go to stderr. Exit codes: 0 done, 1 error, 2 usage,
// 3 partial, 130 interrupted.
package main

import (
	"os"

	"github.com/ddbrewind/rewind/internal/cli"
)

func main() { os.Exit(cli.Main(os.Args[1:])) }
