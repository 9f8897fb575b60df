// Shared by the suites: loading the package the way an edge runtime does (`--target web`
// output, initialised from the module bytes). The vector files and their typed notation
// come from tests/vectors/notation.cjs (shared with the Node suites and agent).
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import path from 'node:path'

const here = path.dirname(fileURLToPath(import.meta.url))
export const root = path.resolve(here, '..', '..', '..')
const pkg = path.resolve(here, '..', 'pkg')

const glue = await import(path.join(pkg, 'polycache.js')).catch((err) => {
  throw new Error(`${pkg} is missing: build it with \`make test-wasm\` (${err.message})`)
})
glue.initSync({ module: readFileSync(path.join(pkg, 'polycache_bg.wasm')) })
export const pc = glue

export { vectors, typed, toTyped, representable, same, hostileBytes } from '../../../tests/vectors/notation.cjs'

export function hex(bytes) {
  return Buffer.from(bytes).toString('hex')
}
