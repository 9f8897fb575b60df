// Just enough of a Redis client for the tests: what an edge function's own transport does.
import net from 'node:net'

/** Just enough RESP2 for GET / SET / PTTL / DEL: one connection, one command at a time. */
export class Resp {
  static async connect(hostPort) {
    const [host, port] = hostPort.split(':')
    const socket = net.connect(Number(port), host)
    await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject))
    return new Resp(socket)
  }

  constructor(socket) {
    this.socket = socket
    this.buffer = Buffer.alloc(0)
    this.waiting = null
    socket.on('data', (chunk) => {
      this.buffer = Buffer.concat([this.buffer, chunk])
      this.settle()
    })
  }

  command(...args) {
    const parts = [Buffer.from(`*${args.length}\r\n`)]
    for (const arg of args) {
      const bytes = Buffer.from(arg)
      parts.push(Buffer.from(`$${bytes.length}\r\n`), bytes, Buffer.from('\r\n'))
    }
    this.socket.write(Buffer.concat(parts))
    return new Promise((resolve, reject) => {
      this.waiting = { resolve, reject }
      this.settle()
    })
  }

  settle() {
    if (!this.waiting) return
    const parsed = parse(this.buffer, 0)
    if (!parsed) return
    this.buffer = this.buffer.subarray(parsed.end)
    const { resolve, reject } = this.waiting
    this.waiting = null
    if (parsed.value instanceof Error) reject(parsed.value)
    else resolve(parsed.value)
  }

  close() {
    this.socket.destroy()
  }
}

/** One RESP2 reply from `buf` at `at`, or null when incomplete. */
function parse(buf, at) {
  const eol = buf.indexOf('\r\n', at)
  if (eol < 0) return null
  const line = buf.subarray(at + 1, eol).toString()
  switch (String.fromCharCode(buf[at])) {
    case '+': return { value: line, end: eol + 2 }
    case '-': return { value: new Error(line), end: eol + 2 }
    case ':': return { value: Number(line), end: eol + 2 }
    case '$': {
      const n = Number(line)
      if (n < 0) return { value: null, end: eol + 2 }
      if (buf.length < eol + 2 + n + 2) return null
      return { value: buf.subarray(eol + 2, eol + 2 + n), end: eol + 2 + n + 2 }
    }
    default: throw new Error(`unexpected RESP reply ${line}`)
  }
}
