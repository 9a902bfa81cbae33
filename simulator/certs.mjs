// The simulator's own certificate chain for the Noise handshake.
// A root key pair (the test trust anchor, standing in for WhatsApp's long-term key) signs an
// intermediate, the intermediate signs the leaf that carries the server's static Noise key.
// Clients trust it only because the test runtime pins WA_CERT_DETAILS.PUBLIC_KEY to root.public.
import { Curve, proto } from '@whiskeysockets/baileys'

/** Encode a CertChain for `serverStatic`, signed by `root`. `issuerSerial` must equal
 * WA_CERT_DETAILS.SERIAL (0) or Baileys refuses the chain; tests set it wrong on purpose. */
export function makeCertChain (root, serverStatic, { issuerSerial = 0 } = {}) {
  const inter = Curve.generateKeyPair()
  const now = Math.floor(Date.now() / 1000)
  const Details = proto.CertChain.NoiseCertificate.Details
  const interDetails = Details.encode({ serial: 1, issuerSerial, key: inter.public, notBefore: now - 60, notAfter: now + 86400 }).finish()
  const leafDetails = Details.encode({ serial: 2, issuerSerial: 1, key: serverStatic.public, notBefore: now - 60, notAfter: now + 86400 }).finish()
  return proto.CertChain.encode({
    intermediate: { details: interDetails, signature: Buffer.from(Curve.sign(root.private, interDetails)) },
    leaf: { details: leafDetails, signature: Buffer.from(Curve.sign(inter.private, leafDetails)) },
  }).finish()
}
