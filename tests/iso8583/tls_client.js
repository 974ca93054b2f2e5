// tls_client.js — a real TLS client for tests/iso8583/test_tls.c (Node's tls
// module): connects, sends one frame given in hex, prints the first whole
// answer frame in hex, or CLOSED / ERROR <reason> / TIMEOUT. Bounded: 5 s.
//
// usage: node tls_client.js HOST PORT CA_FILE FRAMING HEX [CERT KEY]
//   CA_FILE: trusted for the server's certificate; FRAMING: binary | ascii.
'use strict';
const tls = require('tls');
const fs = require('fs');

const [host, port, caFile, framing, hex, certFile, keyFile] = process.argv.slice(2);
const options = {
	host, port: Number(port), ca: fs.readFileSync(caFile),
	checkServerIdentity: () => undefined, // test certificates name no host
	minVersion: 'TLSv1.2',
};
if (certFile) {
	options.cert = fs.readFileSync(certFile);
	options.key = fs.readFileSync(keyFile);
}
let done = false;
function finish(line) {
	if (done) return;
	done = true;
	process.stdout.write(line + '\n');
	process.exit(0);
}
setTimeout(() => finish('TIMEOUT'), 5000);
let input = Buffer.alloc(0);
const socket = tls.connect(options, () => socket.write(Buffer.from(hex, 'hex')));
socket.on('data', (chunk) => {
	input = Buffer.concat([input, chunk]);
	const prefix = framing === 'ascii' ? 4 : 2;
	if (input.length < prefix) return;
	const length = framing === 'ascii' ? Number(input.subarray(0, 4).toString())
		: input.readUInt16BE(0);
	if (input.length >= prefix + length)
		finish('FRAME ' + input.subarray(0, prefix + length).toString('hex'));
});
socket.on('error', (error) => finish('ERROR ' + (error.code || error.message)));
socket.on('close', () => finish('CLOSED'));
