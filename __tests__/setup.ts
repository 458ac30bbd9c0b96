// Tests run on the cpu backend unless a test picks another one; IS_TEST silences tfjs's
// "install the node backend" banner.
import * as tf from '@tensorflow/tfjs';

tf.env().set('IS_TEST', true);
void tf.setBackend('cpu');
