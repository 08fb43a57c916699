// Validates an OpenAPI document against the official OpenAPI JSON schema of its version and
// resolves every $ref. Usage: node check.mjs docs/openapi.json. Exit 0 when valid, else 1
// with the errors on stdout. Run by tests/integration/test_openapi.py when Node.js is present.
import { Validator } from "@seriousme/openapi-schema-validator";
import { argv, exit } from "node:process";

const validator = new Validator();
const res = await validator.validate(argv[2]);
if (!res.valid) {
  console.log(JSON.stringify(res.errors, null, 2));
  exit(1);
}
try {
  validator.resolveRefs();
} catch (e) {
  console.log("a $ref does not resolve: " + e.message);
  exit(1);
}
console.log("valid OpenAPI " + validator.version);
