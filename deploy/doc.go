// Package deploy holds no Go code: it is the home of the AWS SAM template of
// the capture stage (template.yaml), the IAM policy of the operator who runs
// rewind during an incident (operator-policy.json), and the tests that keep
// both honest (go test ./deploy). See README.md in this directory.
package deploy
