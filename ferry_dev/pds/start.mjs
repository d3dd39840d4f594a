// A local ATProto network for Ferry: one PLC and one PDS (no AppView), plus one account.
// Started by ferry_dev.devstack (DevStack.start_pds). Prints one JSON line on stdout, then runs until SIGTERM.
//   node start.mjs <pds_port> <plc_port> <handle> <password>
import { TestNetworkNoAppView } from '@atproto/dev-env'

const [pdsPort, plcPort, handle, password] = process.argv.slice(2)
const network = await TestNetworkNoAppView.create({
  pds: { port: Number(pdsPort) },
  plc: { port: Number(plcPort) },
})
const sc = network.getSeedClient()
const account = await sc.createAccount('alice', { handle, email: 'alice@ferry.test', password })
console.log(JSON.stringify({ pds_url: network.pds.url, plc_url: network.plc.url, handle, password, did: account.did }))

const stop = async () => {
  await network.close()
  process.exit(0)
}
process.on('SIGTERM', stop)
process.on('SIGINT', stop)
setInterval(() => {}, 1 << 30)
